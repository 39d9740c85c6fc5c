/*
 * swm_shim.h: the C layer that Swift cannot express itself.
 *
 * Everything here is static inline so that, once imported into the Swift
 * module, each helper compiles to the one or two instructions it names:
 *   - the thread-cache slot: an initial-exec __thread pointer (one %fs load);
 *   - C11 atomics on raw memory;
 *   - the allocator lock (a three-state futex mutex);
 *   - system calls, each wrapped once, each preserving errno;
 *   - the page map root (a BSS array, see PageMap.swift).
 * Nothing in this header calls malloc, stdio, getenv or dlsym.
 */
#ifndef SWM_SHIM_H
#define SWM_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <stdatomic.h>

#include "swm_size_classes.h"

/* MARK: thread-cache slot ------------------------------------------------ */

extern __thread void *swm_tls_cache __attribute__((tls_model("initial-exec"), visibility("hidden")));

/* The calling thread's cache, the fresh sentinel before it has one, or the
 * dead cache after it was torn down: never NULL. */
static inline __attribute__((always_inline, returns_nonnull)) void *swm_tls_get(void) { return swm_tls_cache; }
static inline __attribute__((always_inline)) void swm_tls_set(void *cache) { swm_tls_cache = cache; }

/* Room for the sentinel's bins (ThreadCache.binsBytes, checked at init). */
#define SWM_FRESH_CACHE_BYTES 1024
static inline __attribute__((always_inline, returns_nonnull)) void *swm_fresh_cache_get(void) {
  extern unsigned char swm_fresh_cache[] __attribute__((visibility("hidden")));
  return swm_fresh_cache;
}

/* Registers the calling thread's cache with the exit key so that the
 * destructor returns it. Returns 0 when the key does not exist yet (before
 * the library constructor ran); the caller retries on a later slow path. */
int swm_thread_register(void *cache);

/* MARK: errno ------------------------------------------------------------ */

static inline int swm_errno_get(void) { return errno; }
static inline void swm_errno_set(int e) { errno = e; }
static inline int swm_ENOMEM(void) { return ENOMEM; }
static inline int swm_EINVAL(void) { return EINVAL; }

/* MARK: atomics on raw memory -------------------------------------------- */

static inline uintptr_t swm_atomic_load(uintptr_t *p) {
  return atomic_load_explicit((_Atomic uintptr_t *)p, memory_order_acquire);
}
static inline void swm_atomic_store(uintptr_t *p, uintptr_t v) {
  atomic_store_explicit((_Atomic uintptr_t *)p, v, memory_order_release);
}
/* A hint to start loading the line holding p (for a read). */
static inline __attribute__((always_inline)) void swm_prefetch(const void *p) {
  __builtin_prefetch(p, 0, 3);
}
static inline uintptr_t swm_atomic_add(uintptr_t *p, uintptr_t v) {
  return atomic_fetch_add_explicit((_Atomic uintptr_t *)p, v, memory_order_relaxed);
}
static inline int swm_atomic_cas(uintptr_t *p, uintptr_t expected, uintptr_t desired) {
  return atomic_compare_exchange_strong_explicit((_Atomic uintptr_t *)p, &expected, desired,
                                                 memory_order_acq_rel, memory_order_acquire);
}

/* MARK: lock ------------------------------------------------------------- */

/* 0 = unlocked, 1 = locked, 2 = locked with waiters (Drepper, "Futexes Are
 * Tricky", mutex 3). Zero-initialised memory is an unlocked lock. */
typedef struct { _Atomic int state; } swm_lock_t;

void swm_lock_slow(swm_lock_t *lock);
void swm_unlock_slow(swm_lock_t *lock);

static inline __attribute__((always_inline)) void swm_lock(swm_lock_t *lock) {
  int expected = 0;
  if (__builtin_expect(atomic_compare_exchange_strong_explicit(&lock->state, &expected, 1,
        memory_order_acquire, memory_order_relaxed), 1))
    return;
  swm_lock_slow(lock);
}
static inline __attribute__((always_inline)) void swm_unlock(swm_lock_t *lock) {
  if (__builtin_expect(atomic_exchange_explicit(&lock->state, 0, memory_order_release) != 1, 0))
    swm_unlock_slow(lock);
}
/* Used by the fork child: whatever state the lock had, it is free now. */
static inline void swm_lock_reset(swm_lock_t *lock) {
  atomic_store_explicit(&lock->state, 0, memory_order_relaxed);
}

/* MARK: system calls (errno preserved by every wrapper) -------------------- */

static inline void *swm_sys_sbrk(intptr_t increment) {
  int e = errno;
  void *p = sbrk(increment);
  errno = e;
  return p == (void *)-1 ? NULL : p;
}
static inline void *swm_sys_mmap(size_t len) {
  int e = errno;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  errno = e;
  return p == MAP_FAILED ? NULL : p;
}
static inline int swm_sys_munmap(void *p, size_t len) {
  int e = errno;
  int r = munmap(p, len);
  errno = e;
  return r;
}
/* Returns the new address, or NULL; the old mapping is intact on failure. */
static inline void *swm_sys_mremap(void *p, size_t old_len, size_t new_len, int may_move) {
  int e = errno;
  void *q = (void *)syscall(SYS_mremap, p, old_len, new_len, may_move ? 1 /* MREMAP_MAYMOVE */ : 0, NULL);
  errno = e;
  return q == MAP_FAILED ? NULL : q;
}
/* Gives the pages back; the range stays mapped and reads as zero next time. */
static inline int swm_sys_decommit(void *p, size_t len) {
  int e = errno;
  int r = madvise(p, len, MADV_DONTNEED);
  errno = e;
  return r;
}
/* none != 0: the range becomes a guard; 0: ordinary memory again.
 * Linux 6.13+ guard regions (MADV_GUARD_INSTALL/REMOVE) neither split the
 * mapping nor count against RLIMIT_DATA, so removing a guard cannot fail
 * at a limit; older kernels get mprotect (PROT_NONE / read-write). */
static inline int swm_sys_protect(void *p, size_t len, int none) {
  int e = errno;
  int r = madvise(p, len, none ? 102 /* MADV_GUARD_INSTALL */ : 103 /* MADV_GUARD_REMOVE */);
  if (r != 0) r = mprotect(p, len, none ? PROT_NONE : (PROT_READ | PROT_WRITE));
  errno = e;
  return r;
}
static inline void swm_sys_write(int fd, const void *buf, size_t len) {
  int e = errno;
  const char *c = (const char *)buf;
  while (len > 0) {
    ssize_t n = write(fd, c, len);
    if (n <= 0) break;
    c += n;
    len -= (size_t)n;
  }
  errno = e;
}
static inline uint64_t swm_sys_random(void) {
  int e = errno;
  uint64_t v = 0;
  if (syscall(SYS_getrandom, &v, sizeof v, 0x0001 /* GRND_NONBLOCK */) != (long)sizeof v)
    v = (uint64_t)(uintptr_t)&v * 0x9E3779B97F4A7C15ull ^ (uint64_t)syscall(SYS_gettid);
  errno = e;
  return v;
}

/* Milliseconds on a coarse monotonic clock (vDSO, no system call). */
#include <time.h>
static inline uint64_t swm_now_ms(void) {
  struct timespec t;
  int e = errno;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  errno = e;
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* The process environment, walked by Options.swift (never getenv). */
extern char **environ;
static inline char **swm_environ(void) { return environ; }

/* MARK: global state and locks -------------------------------------------- */

/* All allocator state lives in one zero-initialised BSS block (zero is the
 * valid "not yet initialised" state of every structure in it); Swift lays
 * it out, see GlobalState.swift. Defined in state.c under this asm name. */
#define SWM_STATE_BYTES (64u * 1024u)
extern char swm_state_blob_start __asm__("swm_state_blob") __attribute__((visibility("hidden")));
static inline __attribute__((always_inline)) void *swm_state(void) { return &swm_state_blob_start; }
static inline size_t swm_state_bytes(void) { return SWM_STATE_BYTES; }

/* Lock order (fork takes them all in index order):
 *   init < central list of class 1 < ... < class N-1 < page heap < meta < page map
 *   < quarantine (secure mode; taken with no other lock held). */
#define SWM_LOCK_INIT 0
#define SWM_LOCK_PAGEHEAP SWM_NUM_CLASSES
#define SWM_LOCK_META (SWM_NUM_CLASSES + 1)
#define SWM_LOCK_PAGEMAP (SWM_NUM_CLASSES + 2)
#define SWM_LOCK_QUARANTINE (SWM_NUM_CLASSES + 3)
#define SWM_NUM_LOCKS (SWM_NUM_CLASSES + 4)
static inline __attribute__((always_inline)) swm_lock_t *swm_lock_at(unsigned i) {
  /* block-scope declarations keep the arrays out of Swift's view */
  extern swm_lock_t swm_locks[] __attribute__((visibility("hidden")));
  return &swm_locks[i];
}
static inline unsigned swm_lock_index_pageheap(void) { return SWM_LOCK_PAGEHEAP; }
static inline unsigned swm_lock_index_meta(void) { return SWM_LOCK_META; }
static inline unsigned swm_lock_index_pagemap(void) { return SWM_LOCK_PAGEMAP; }
static inline unsigned swm_lock_index_quarantine(void) { return SWM_LOCK_QUARANTINE; }
static inline unsigned swm_lock_count(void) { return SWM_NUM_LOCKS; }

/* 1 in libswiftmalloc-secure.so (secure_on.c), 0 in libswiftmalloc.so
 * (secure_off.c): secure mode without SWIFTMALLOC_SECURE=1. */
static inline int swm_secure_built_in(void) {
  extern const int swm_secure_build __attribute__((visibility("hidden")));
  return swm_secure_build;
}

/* What mallinfo2, malloc_stats and malloc_info report; filled by Swift. */
typedef struct {
  size_t arena;        /* bytes taken with sbrk and still held */
  size_t region_mmap;  /* bytes of mmap-backed spans (sbrk fallback) */
  size_t hblks;        /* mmap blocks (requests >= M_MMAP_THRESHOLD) */
  size_t hblkhd;       /* bytes in mmap blocks */
  size_t uordblks;     /* bytes in use (thread caches count as in use) */
  size_t fordblks;     /* free bytes in spans and the page heap */
  size_t keepcost;     /* free bytes at the top of the sbrk heap */
  size_t released;     /* free bytes already given back to the OS (madvise) */
  size_t meta;         /* bytes of allocator metadata */
  size_t threads;      /* live thread caches */
} swm_stats_t;

/* MARK: page map root ------------------------------------------------------ */

/* Page numbers are 35 bits (47-bit addresses, 4 KiB pages): 17 bits choose a
 * leaf in this root, 18 bits a slot in the leaf. The root is 1 MiB of BSS;
 * only the few entries in use are ever touched. A leaf is an array of
 * PageEntry (Back/PageMap.swift), 16 bytes per page. */
#define SWM_PAGEMAP_ROOT_BITS 17
#define SWM_PAGEMAP_LEAF_BITS 18
static inline __attribute__((always_inline)) void *swm_pagemap_leaf(uintptr_t rootIndex) {
  extern void *swm_pagemap_root[] __attribute__((visibility("hidden")));
  return swm_pagemap_root[rootIndex];
}
static inline void swm_pagemap_set_leaf(uintptr_t rootIndex, void *leaf) {
  extern void *swm_pagemap_root[] __attribute__((visibility("hidden")));
  __atomic_store_n(&swm_pagemap_root[rootIndex], leaf, __ATOMIC_RELEASE);
}

/* MARK: messages ------------------------------------------------------------ */

/* Writes "swiftmalloc: <call>: <problem> <ptr>\n" with write(2), then abort(). */
__attribute__((noreturn)) void swm_fatal(const char *call, const char *problem, const void *ptr);
/* Writes "swiftmalloc: <text><value>\n" (a warning; execution goes on). */
void swm_warn(const char *text, const char *value);

/* The pool family's helpers (futex condition, clock, slab registry). */
#include "swm_pool_shim.h"

#endif
