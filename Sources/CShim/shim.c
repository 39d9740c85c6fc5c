/*
 * shim.c: the thread-cache slot, the thread-exit key, fork handlers, the
 * futex lock's slow paths and the fatal-error writer. See swm_shim.h.
 */
#include "swm_shim.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Implemented in Swift (Sources/SwiftMalloc/ThreadCache.swift, Fork.swift). */
extern void swmcore_thread_exit(void *cache);
extern void swmcore_fork_prepare(void);
extern void swmcore_fork_parent(void);
extern void swmcore_fork_child(void);

/* A thread's slot starts at the fresh sentinel, all-zero bins (empty, limit
 * 0): a thread's first malloc and free miss without a NULL test on the fast
 * path, and the slow path sees the sentinel and creates the cache. */
__attribute__((visibility("hidden"), aligned(64))) unsigned char swm_fresh_cache[SWM_FRESH_CACHE_BYTES];
__thread void *swm_tls_cache __attribute__((tls_model("initial-exec"))) = swm_fresh_cache;

__attribute__((visibility("hidden"))) void *swm_pagemap_root[1u << SWM_PAGEMAP_ROOT_BITS];
__attribute__((visibility("hidden"))) swm_lock_t swm_locks[SWM_NUM_LOCKS];

/* MARK: thread exit ------------------------------------------------------ */

static pthread_key_t swm_exit_key;
static _Atomic int swm_exit_key_ready;

static void swm_exit_destructor(void *cache) {
  if (cache != NULL) swmcore_thread_exit(cache);
}

int swm_thread_register(void *cache) {
  if (!atomic_load_explicit(&swm_exit_key_ready, memory_order_acquire)) return 0;
  /* The slot is set before this call, so a malloc from inside
   * pthread_setspecific finds the cache and does not come back here. */
  pthread_setspecific(swm_exit_key, cache);
  return 1;
}

/* Runs when the library is loaded (for a static link: before main). The very
 * first mallocs may come before this; they work without the key, and their
 * thread registers on a later slow path. */
__attribute__((constructor(101))) static void swm_shim_init(void) {
  if (pthread_key_create(&swm_exit_key, swm_exit_destructor) == 0)
    atomic_store_explicit(&swm_exit_key_ready, 1, memory_order_release);
  pthread_atfork(swmcore_fork_prepare, swmcore_fork_parent, swmcore_fork_child);
}

/* MARK: lock slow paths ----------------------------------------------------- */

static long swm_futex(_Atomic int *addr, int op, int val) {
  return syscall(SYS_futex, (int *)addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

void swm_lock_slow(swm_lock_t *lock) {
  int e = errno;
  /* spin briefly: allocator critical sections are short */
  for (int i = 0; i < 100; i++) {
    int expected = 0;
    if (atomic_load_explicit(&lock->state, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&lock->state, &expected, 1,
                                              memory_order_acquire, memory_order_relaxed)) {
      errno = e;
      return;
    }
    __builtin_ia32_pause();
  }
  int c = atomic_exchange_explicit(&lock->state, 2, memory_order_acquire);
  while (c != 0) {
    swm_futex(&lock->state, FUTEX_WAIT, 2);
    c = atomic_exchange_explicit(&lock->state, 2, memory_order_acquire);
  }
  errno = e;
}

void swm_unlock_slow(swm_lock_t *lock) {
  int e = errno;
  swm_futex(&lock->state, FUTEX_WAKE, 1);
  errno = e;
}

/* MARK: messages ------------------------------------------------------------ */

static size_t swm_append(char *buf, size_t at, size_t cap, const char *s) {
  while (s && *s && at < cap) buf[at++] = *s++;
  return at;
}

void swm_fatal(const char *call, const char *problem, const void *ptr) {
  char buf[256];
  size_t n = 0, cap = sizeof buf - 1;
  n = swm_append(buf, n, cap, "swiftmalloc: ");
  n = swm_append(buf, n, cap, call);
  n = swm_append(buf, n, cap, ": ");
  n = swm_append(buf, n, cap, problem);
  n = swm_append(buf, n, cap, " 0x");
  uintptr_t v = (uintptr_t)ptr;
  char hex[2 * sizeof v];
  int digits = 0;
  do { hex[digits++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v != 0);
  while (digits > 0 && n < cap) buf[n++] = hex[--digits];
  buf[n++] = '\n';
  swm_sys_write(2, buf, n);
  abort();
}

void swm_warn(const char *text, const char *value) {
  char buf[256];
  size_t n = 0, cap = sizeof buf - 1;
  n = swm_append(buf, n, cap, "swiftmalloc: ");
  n = swm_append(buf, n, cap, text);
  n = swm_append(buf, n, cap, value);
  buf[n++] = '\n';
  swm_sys_write(2, buf, n);
}
