/*
 * swm_pool_shim.h: the C helpers of the pool family (Sources/SwiftMalloc/Pools):
 *   - a futex wait with a timeout and a wake, the condition variable of
 *     swm_mempool (a sequence word: wait while it still holds what was read);
 *   - a monotonic clock in milliseconds for swm_mempool_alloc_timeout;
 *   - an atomic byte exchange (slab caches mark objects free/allocated);
 *   - the CPU number, which picks a slab cache's magazine;
 *   - the registry of slab caches (for swm_slabinfo) and the line writer of
 *     swm_slabinfo (pools.c).
 * Like swm_shim.h, nothing here calls malloc or stdio; errno is preserved.
 */
#ifndef SWM_POOL_SHIM_H
#define SWM_POOL_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <stdatomic.h>

/* A test-and-set spinlock for the slab caches' per-CPU magazines: one
 * atomic exchange to take, a plain release store to drop (a swm_lock_t needs
 * an exchange on both sides). A magazine is almost only used from its own
 * CPU, so the lock is nearly never contended; a waiter yields the CPU after
 * a short spin, in case the holder was preempted. 0 = free. */
static inline void swm_pool_spin_wait(uint32_t *word) {
  for (int spins = 0; __atomic_load_n(word, __ATOMIC_RELAXED) != 0; spins++) {
    if (spins < 128) __builtin_ia32_pause();
    else { int e = errno; sched_yield(); errno = e; }
  }
}
static inline __attribute__((always_inline)) void swm_pool_spin_lock(uint32_t *word) {
  if (__builtin_expect(swm_tls_forking, 0)) return;  /* the forking thread holds them all (swm_shim.h) */
  while (__builtin_expect(__atomic_exchange_n(word, 1, __ATOMIC_ACQUIRE) != 0, 0))
    swm_pool_spin_wait(word);
}
static inline __attribute__((always_inline)) void swm_pool_spin_unlock(uint32_t *word) {
  if (__builtin_expect(swm_tls_forking, 0)) return;
  __atomic_store_n(word, 0, __ATOMIC_RELEASE);
}

/* The fork child: the magazine is free, whatever its state. */
static inline void swm_pool_spin_reset(uint32_t *word) { __atomic_store_n(word, 0, __ATOMIC_RELAXED); }

/* Blocks while *word == expected, at most timeout_ms milliseconds (a
 * negative timeout waits without limit). Spurious returns are allowed: the
 * caller re-checks its condition. */
static inline void swm_pool_futex_wait(uint32_t *word, uint32_t expected, long timeout_ms) {
  swm_futex_wait(word, expected, timeout_ms);
}

/* Wakes every thread blocked in swm_pool_futex_wait on word. */
static inline void swm_pool_futex_wake_all(uint32_t *word) { swm_futex_wake(word, 0x7fffffff); }

static inline uint32_t swm_pool_load32(uint32_t *word) {
  return atomic_load_explicit((_Atomic uint32_t *)word, memory_order_acquire);
}
static inline void swm_pool_add32(uint32_t *word, uint32_t v) {
  atomic_fetch_add_explicit((_Atomic uint32_t *)word, v, memory_order_release);
}

static inline long swm_pool_now_ms(void) { return (long)swm_clock_ms(1); }

static inline uint8_t swm_pool_load8(uint8_t *byte) {
  return atomic_load_explicit((_Atomic uint8_t *)byte, memory_order_relaxed);
}
static inline void swm_pool_store8(uint8_t *byte, uint8_t v) {
  atomic_store_explicit((_Atomic uint8_t *)byte, v, memory_order_relaxed);
}

/* One more than the highest CPU number the process may run on (from the
 * affinity mask: a system call, no file and no malloc), at least 1. */
static inline unsigned swm_pool_cpu_span(void) {
  int e = errno;
  unsigned long mask[16] = {0};
  long n = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
  errno = e;
  unsigned span = 1;
  for (long w = 0; n > 0 && w < n / (long)sizeof(unsigned long); w++)
    for (unsigned b = 0; b < 8 * sizeof(unsigned long); b++)
      if (mask[w] & (1ul << b)) span = (unsigned)(w * 8 * sizeof(unsigned long) + b + 1);
  return span;
}

/* The CPU the thread runs on, read from the rseq area glibc (2.35+)
 * registers for every thread: one load through the thread pointer. Without
 * rseq, a stable per-thread number (threads share magazines round-robin). */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
extern __thread unsigned swm_pool_thread_slot __attribute__((tls_model("initial-exec"), visibility("hidden")));
unsigned swm_pool_assign_slot(void) __attribute__((visibility("hidden")));
/* A number of the calling thread, fixed for its life: 1, 2, ... in the
 * order threads first ask (secure mode's quarantine shards, and the
 * fallback of swm_pool_cpu). */
static inline __attribute__((always_inline)) unsigned swm_thread_number(void) {
  unsigned slot = swm_pool_thread_slot;
  return slot != 0 ? slot : swm_pool_assign_slot();
}
static inline __attribute__((always_inline)) unsigned swm_pool_cpu(void) {
  if (&__rseq_size != NULL && __rseq_size != 0) {
    char *tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    int c = *(volatile int *)(tp + __rseq_offset + 4); /* struct rseq.cpu_id */
    if (__builtin_expect(c >= 0, 1)) return (unsigned)c;
  }
  return swm_thread_number();
}

/* Every live slab cache (for swm_slabinfo and fork) and every memory reserve
 * (for fork); each links itself through its own `next` field, under `lock`.
 * Zero-initialised BSS. */
typedef struct {
  _Atomic int lock_state; /* a swm_lock_t */
  void *head;             /* slab caches */
  void *mempools;         /* memory reserves (for fork, see Fork.swift) */
} swm_pool_registry_t;
swm_pool_registry_t *swm_pool_registry(void) __attribute__((visibility("hidden")));

/* One line of swm_slabinfo: the header when name is NULL. */
void swm_pool_slabinfo_line(int fd, const char *name, size_t active, size_t total,
                            size_t objsize, size_t perslab, size_t pages)
    __attribute__((visibility("hidden")));

/* Layout twin of swiftmalloc.h's swm_static_stats_t (filled by Swift). */
typedef struct { size_t used, free, largest_free, free_blocks; } swm_pool_static_stats_t;

/* "swiftmalloc: <before><name><before2><count>\n" on stderr (a warning). */
void swm_pool_leak_warning(const char *before, const char *name, size_t count, const char *after)
    __attribute__((visibility("hidden")));

#endif
