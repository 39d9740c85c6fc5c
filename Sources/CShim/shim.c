/*
 * shim.c: the thread-cache slot, the thread-exit key, fork handlers, the
 * futex lock's slow paths and the fatal-error writer. See swm_shim.h.
 */
#include "swm_shim.h"
#include "../exports/swiftmalloc.h"
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

/* Implemented in Swift (Sources/SwiftMalloc/Front/ThreadCache.swift, Fork.swift). */
extern void swmcore_thread_exit(void *cache);
extern void swmcore_fork_lock_all(void);
extern void swmcore_fork_unlock_all(void);
extern void swmcore_fork_reset_all(void);

/* A thread's slot starts at the fresh sentinel, all-zero bins (empty, limit
 * 0): a thread's first malloc and free miss without a NULL test on the fast
 * path, and the slow path sees the sentinel and creates the cache. */
__attribute__((visibility("hidden"), aligned(64))) unsigned char swm_fresh_cache[SWM_FRESH_CACHE_BYTES];
__thread void *swm_tls_cache __attribute__((tls_model("initial-exec"))) = swm_fresh_cache;
__thread unsigned char swm_tls_forking __attribute__((tls_model("initial-exec"), visibility("hidden")));

__attribute__((visibility("hidden"))) void *swm_pagemap_root[1u << SWM_PAGEMAP_ROOT_BITS];
__attribute__((visibility("hidden"))) swm_lock_t swm_locks[SWM_NUM_LOCKS];

/* MARK: thread exit ------------------------------------------------------ */

/* The key whose destructor gives a thread's cache back. It is created by
 * the first thread that makes a cache, not by a constructor: threads that
 * allocate before our constructor runs (another library's constructor may
 * start them) must give their caches back too. 0: not yet; 1: being made;
 * 2: ready; 3: pthread_key_create failed (PTHREAD_KEYS_MAX), never retried. */
static pthread_key_t swm_exit_key;
static _Atomic int swm_exit_key_state;

static void swm_exit_destructor(void *cache) {
  if (cache != NULL) swmcore_thread_exit(cache);
}

/* Called with no allocator lock held (pthread_key_create and
 * pthread_setspecific may allocate: keys past the first 32 get a second-level
 * block from calloc). */
int swm_thread_register(void *cache) {
  int state = atomic_load_explicit(&swm_exit_key_state, memory_order_acquire);
  if (state == 0) {
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(&swm_exit_key_state, &expected, 1, memory_order_acq_rel,
                                                memory_order_acquire)) {
      state = pthread_key_create(&swm_exit_key, swm_exit_destructor) == 0 ? 2 : 3;
      atomic_store_explicit(&swm_exit_key_state, state, memory_order_release);
    } else {
      state = expected;  /* another thread is making it: register on a later slow path */
    }
  }
  if (state != 2) return state == 3;  /* failed for good: stop asking */
  /* The slot is set before this call, so a malloc from inside
   * pthread_setspecific finds the cache and does not come back here. */
  pthread_setspecific(swm_exit_key, cache);
  return 1;
}

/* MARK: fork --------------------------------------------------------------- */

/* glibc's own order, which programs rely on:
 * - a single-threaded process takes no allocator lock at all, so a fork from
 *   a signal handler that interrupted malloc cannot wait on the interrupted
 *   call (glibc BZ #19703, tst-mallocfork2); in the child that call resumes
 *   and finishes as it would have in the parent;
 * - stdio's list lock is taken before the allocator's locks (glibc BZ
 *   #19431, tst-malloc-fork-deadlock): a thread in fflush(NULL) holds it
 *   while waiting for a FILE lock whose holder is in malloc. fork() takes the
 *   list lock again after the prepare handlers; it is recursive, and glibc's
 *   fork releases (parent) or resets (child) it once, we once more.
 * These are glibc's exported names (GLIBC_2.2.5 and 2.32); weak, so that a
 * libc without them simply skips the step. */
extern char __libc_single_threaded __attribute__((weak));
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void swm_fork_prepare(void) {
  if (&__libc_single_threaded != NULL && __libc_single_threaded) return;
  if (_IO_list_lock != NULL) _IO_list_lock();
  swmcore_fork_lock_all();
  swm_tls_forking = 1;
}

static void swm_fork_parent(void) {
  if (!swm_tls_forking) return;
  swm_tls_forking = 0;
  swmcore_fork_unlock_all();
  if (_IO_list_unlock != NULL) _IO_list_unlock();
}

static void swm_background_start(void);
static _Atomic int swm_background_running;

static void swm_fork_child(void) {
  if (swm_tls_forking) {
    swm_tls_forking = 0;
    swmcore_fork_reset_all();
    if (_IO_list_resetlock != NULL) _IO_list_resetlock();
  }
  /* the purge thread is not copied: a child that asked for it gets its own */
  if (atomic_exchange_explicit(&swm_background_running, 0, memory_order_relaxed)) swm_background_start();
}

/* Registers the fork handlers, once (the thread-exit key is made by the
 * first thread cache: swm_thread_register). Called by the first
 * allocation, after initialisation and with no allocator lock
 * held (pthread_atfork may allocate), and again by the constructor: fork
 * protection exists from the first allocation, even one made by another
 * library's constructor before ours ran. Registered that early, our prepare
 * handler usually runs after every other library's (handlers run in reverse
 * order of registration), as glibc's malloc locking does; when another
 * library registered first, its prepare handler runs after ours and may
 * still allocate (swm_tls_forking). */
void swm_lifecycle_init(void) {
  static _Atomic int registered;
  if (atomic_exchange_explicit(&registered, 1, memory_order_acq_rel) != 0) return;
  pthread_atfork(swm_fork_prepare, swm_fork_parent, swm_fork_child);
}

/* MARK: background purge ----------------------------------------------------- */

/* SWIFTMALLOC_BACKGROUND_PURGE=1 (jemalloc's background_thread idea): a
 * thread that wakes every quarter of the decay time and returns what has
 * been free that long, so a process that has gone idle gives memory back
 * too. Started by the constructor (never in a process that did not ask), and
 * again in a fork child; it takes no lock but through the allocator's own
 * calls, with nothing held. */
extern int swmcore_background_purge_wanted(void);
extern unsigned long swmcore_background_purge(void);

static void *swm_background_main(void *arg) {
  (void)arg;
  for (;;) {
    unsigned long ms = swmcore_background_purge();  /* purges; returns how long to sleep */
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
  }
  return NULL;
}

static void swm_background_start(void) {
  if (!swmcore_background_purge_wanted()) return;
  if (atomic_exchange_explicit(&swm_background_running, 1, memory_order_relaxed)) return;
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 << 10);
  if (pthread_create(&thread, &attr, swm_background_main, NULL) != 0)
    atomic_store_explicit(&swm_background_running, 0, memory_order_relaxed);
  pthread_attr_destroy(&attr);
}

__attribute__((constructor(101))) static void swm_shim_init(void) {
  swm_lifecycle_init();
  swm_background_start();
}

/* MARK: lock slow paths ----------------------------------------------------- */

void swm_lock_slow(swm_lock_t *lock) {
  /* spin briefly: allocator critical sections are short */
  for (int i = 0; i < 100; i++) {
    int expected = 0;
    if (atomic_load_explicit(&lock->state, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&lock->state, &expected, 1,
                                              memory_order_acquire, memory_order_relaxed))
      return;
    __builtin_ia32_pause();
  }
  int c = atomic_exchange_explicit(&lock->state, 2, memory_order_acquire);
  while (c != 0) {
    swm_futex_wait(&lock->state, 2, -1);
    c = atomic_exchange_explicit(&lock->state, 2, memory_order_acquire);
  }
}

void swm_unlock_slow(swm_lock_t *lock) { swm_futex_wake(&lock->state, 1); }

/* MARK: messages ------------------------------------------------------------ */

/* Every line the library prints is built here and written with one write(2):
 * no stdio, no malloc (it may run inside a failing malloc). The last byte
 * of the buffer is kept for the newline. */
void swm_line_str(swm_line_t *line, const char *s, size_t width) {
  size_t cap = sizeof line->buf - 1, written = 0;
  while (s && s[written] && line->n < cap) line->buf[line->n++] = s[written++];
  while (written++ < width && line->n < cap) line->buf[line->n++] = ' ';
}

void swm_line_bytes(swm_line_t *line, const char *s, size_t len) {
  size_t cap = sizeof line->buf - 1;
  for (size_t i = 0; i < len && line->n < cap; i++) line->buf[line->n++] = s[i];
}

void swm_line_num(swm_line_t *line, uint64_t v, unsigned base, size_t width) {
  char digits[24];
  size_t n = 0, cap = sizeof line->buf - 1;
  do { digits[n++] = "0123456789abcdef"[v % base]; v /= base; } while (v != 0);
  for (size_t pad = n; pad < width && line->n < cap; pad++) line->buf[line->n++] = ' ';
  while (n > 0 && line->n < cap) line->buf[line->n++] = digits[--n];
}

void swm_line_write(swm_line_t *line, int fd) {
  line->buf[line->n++] = '\n';
  swm_sys_write(fd, line->buf, line->n);
  line->n = 0;
}

void swm_fatal(const char *call, const char *problem, const void *ptr) {
  swm_line_t line = {.n = 0};
  swm_line_str(&line, "swiftmalloc: ", 0);
  swm_line_str(&line, call, 0);
  swm_line_str(&line, ": ", 0);
  swm_line_str(&line, problem, 0);
  swm_line_str(&line, " 0x", 0);
  swm_line_num(&line, (uintptr_t)ptr, 16, 0);
  swm_line_write(&line, 2);
  abort();
}

void swm_fatal_found(const char *problem, const void *ptr, const char *call) {
  swm_line_t line = {.n = 0};
  swm_line_str(&line, "swiftmalloc: ", 0);
  swm_line_str(&line, problem, 0);
  swm_line_str(&line, " 0x", 0);
  swm_line_num(&line, (uintptr_t)ptr, 16, 0);
  swm_line_str(&line, " (found during ", 0);
  swm_line_str(&line, call, 0);
  swm_line_str(&line, ")", 0);
  swm_line_write(&line, 2);
  abort();
}

void swm_warn(const char *text, const char *name, const char *value) {
  swm_line_t line = {.n = 0};
  swm_line_str(&line, "swiftmalloc: ", 0);
  swm_line_str(&line, text, 0);
  swm_line_str(&line, name, 0);
  swm_line_str(&line, value, 0);
  swm_line_write(&line, 2);
}

const char *swm_version_text(void) { return SWIFTMALLOC_VERSION; }
