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
#include <stdbool.h>

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

/* Registers the calling thread's cache with the exit key (made on first
 * use) so that the destructor returns it. Returns 0 when another thread is
 * making the key right now; the caller retries on a later slow path. No
 * allocator lock may be held. */
int swm_thread_register(void *cache);

/* Registers the fork handlers, once (shim.c). No allocator lock may be held. */
void swm_lifecycle_init(void);

/* MARK: errno ------------------------------------------------------------ */

static inline void swm_errno_set(int e) { errno = e; }
static inline int swm_ENOMEM(void) { return ENOMEM; }
static inline int swm_EINVAL(void) { return EINVAL; }

/* MARK: atomics on raw memory -------------------------------------------- */

/* A hint to start loading the line holding p (for a read). */
static inline __attribute__((always_inline)) void swm_prefetch(const void *p) {
  __builtin_prefetch(p, 0, 3);
}
/* A hint to start loading the line holding p for a write. */
static inline __attribute__((always_inline)) void swm_prefetch_write(const void *p) {
  __builtin_prefetch(p, 1, 3);
}
static inline uintptr_t swm_atomic_add(uintptr_t *p, uintptr_t v) {
  return atomic_fetch_add_explicit((_Atomic uintptr_t *)p, v, memory_order_relaxed);
}
static inline uintptr_t swm_atomic_load_relaxed(uintptr_t *p) {
  return atomic_load_explicit((_Atomic uintptr_t *)p, memory_order_relaxed);
}
/* A byte that other threads write under a lock, read without it as a hint
 * (the reader reads it again under the lock before it acts). */
static inline __attribute__((always_inline)) uint8_t swm_atomic_load_byte(const void *p) {
  return atomic_load_explicit((const _Atomic uint8_t *)p, memory_order_relaxed);
}
static inline int swm_atomic_cas_weak(uintptr_t *p, uintptr_t expected, uintptr_t desired) {
  return atomic_compare_exchange_weak_explicit((_Atomic uintptr_t *)p, &expected, desired, memory_order_relaxed,
                                               memory_order_relaxed);
}
static inline uintptr_t swm_atomic_exchange(uintptr_t *p, uintptr_t v) {
  return atomic_exchange_explicit((_Atomic uintptr_t *)p, v, memory_order_acq_rel);
}
static inline void swm_atomic_store_relaxed(uintptr_t *p, uintptr_t v) {
  atomic_store_explicit((_Atomic uintptr_t *)p, v, memory_order_relaxed);
}
/* Sequentially consistent compare-and-swap (on failure *expected gets the
 * value seen) and or: the remote-free inboxes (ThreadCache+Remote.swift). */
static inline bool swm_atomic_cas_full(uintptr_t *p, uintptr_t *expected, uintptr_t desired) {
  return atomic_compare_exchange_weak_explicit((_Atomic uintptr_t *)p, expected, desired, memory_order_seq_cst,
                                               memory_order_seq_cst);
}
static inline uintptr_t swm_atomic_or(uintptr_t *p, uintptr_t v) {
  return atomic_fetch_or_explicit((_Atomic uintptr_t *)p, v, memory_order_seq_cst);
}
static inline uintptr_t swm_atomic_and(uintptr_t *p, uintptr_t v) {
  return atomic_fetch_and_explicit((_Atomic uintptr_t *)p, v, memory_order_seq_cst);
}
/* *p = max(*p, v), atomically (peaks of counters). */
static inline void swm_atomic_max(uintptr_t *p, uintptr_t v) {
  uintptr_t seen = atomic_load_explicit((_Atomic uintptr_t *)p, memory_order_relaxed);
  while (seen < v && !atomic_compare_exchange_weak_explicit((_Atomic uintptr_t *)p, &seen, v, memory_order_relaxed,
                                                            memory_order_relaxed)) {}
}

/* MARK: lock ------------------------------------------------------------- */

/* 0 = unlocked, 1 = locked, 2 = locked with waiters (Drepper, "Futexes Are
 * Tricky", mutex 3). Zero-initialised memory is an unlocked lock. */
typedef struct { _Atomic int state; } swm_lock_t;

void swm_lock_slow(swm_lock_t *lock);
void swm_unlock_slow(swm_lock_t *lock);

/* Set in the thread that is forking, from the moment our prepare handler
 * holds every allocator lock until our parent or child handler lets them go
 * (shim.c). Meanwhile that thread owns the whole allocator: other atfork
 * handlers that run on it before or after ours may malloc and free, and
 * their lock and unlock calls do nothing (no other thread can be inside). */
extern __thread unsigned char swm_tls_forking __attribute__((tls_model("initial-exec"), visibility("hidden")));

static inline __attribute__((always_inline)) void swm_lock(swm_lock_t *lock) {
  if (__builtin_expect(swm_tls_forking, 0)) return;
  int expected = 0;
  if (__builtin_expect(atomic_compare_exchange_strong_explicit(&lock->state, &expected, 1,
        memory_order_acquire, memory_order_relaxed), 1))
    return;
  swm_lock_slow(lock);
}
static inline __attribute__((always_inline)) void swm_unlock(swm_lock_t *lock) {
  if (__builtin_expect(swm_tls_forking, 0)) return;
  if (__builtin_expect(atomic_exchange_explicit(&lock->state, 0, memory_order_release) != 1, 0))
    swm_unlock_slow(lock);
}
/* Takes the lock if it is free; 0 when another thread holds it. */
static inline int swm_trylock(swm_lock_t *lock) {
  if (__builtin_expect(swm_tls_forking, 0)) return 1;
  int expected = 0;
  return atomic_compare_exchange_strong_explicit(&lock->state, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed);
}
/* Used by the fork child: whatever state the lock had, it is free now. */
static inline void swm_lock_reset(swm_lock_t *lock) {
  atomic_store_explicit(&lock->state, 0, memory_order_relaxed);
}

/* MARK: system calls ------------------------------------------------------- */

/* Every OS memory call is a raw system call, never the libc function of the
 * same name: memory profilers, tracers and sandboxes interpose mmap, munmap,
 * madvise, mprotect, sbrk and brk, and their hooks allocate, which would
 * re-enter malloc while we hold a lock (the fault jemalloc met under memray).
 * A raw call also leaves errno alone: the kernel returns -errno in the result
 * register and nothing writes errno, so every wrapper preserves it. */
#if defined(__x86_64__)
static inline __attribute__((always_inline)) long swm_raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static inline __attribute__((always_inline)) long swm_raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
#else
static inline long swm_raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  int saved = errno;
  long r = syscall(n, a, b, c, d, e, f);
  if (r == -1) r = -(long)errno;
  errno = saved;
  return r;
}
#endif
#define SWM_SYSCALL(n, a, b, c) swm_raw_syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
/* A raw result in [-4095, -1] is -errno. */
static inline int swm_sys_failed(long r) { return (unsigned long)r > -4096ul; }

/* sbrk with the brk system call. glibc's sbrk() adds to its cached break
 * (__curbrk), so after moving the break we store the new one there: a later
 * sbrk() from the program or another allocator starts where we stopped
 * instead of cutting our heap short. NULL on failure, the break unchanged. */
extern void *__curbrk __attribute__((weak));
static inline void *swm_sys_sbrk(intptr_t increment) {
  uintptr_t current = (uintptr_t)SWM_SYSCALL(SYS_brk, 0, 0, 0);
  if (increment == 0) return (void *)current;
  uintptr_t want = current + (uintptr_t)increment;
  if (increment > 0 ? want < current : want > current) return NULL;
  uintptr_t got = (uintptr_t)SWM_SYSCALL(SYS_brk, want, 0, 0);
  if (got != want) return NULL;  /* the kernel left the break where it was */
  if (&__curbrk != NULL) __curbrk = (void *)got;
  return (void *)current;
}
static inline void *swm_sys_mmap(size_t len) {
  long r = swm_raw_syscall6(SYS_mmap, 0, (long)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return swm_sys_failed(r) ? NULL : (void *)r;
}
/* Address space nobody may touch (PROT_NONE, no memory committed). */
static inline void *swm_sys_reserve(size_t len) {
  long r = swm_raw_syscall6(SYS_mmap, 0, (long)len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return swm_sys_failed(r) ? NULL : (void *)r;
}
static inline int swm_sys_munmap(void *p, size_t len) {
  return swm_sys_failed(SWM_SYSCALL(SYS_munmap, p, len, 0)) ? -1 : 0;
}
/* Returns the new address, or NULL; the old mapping is intact on failure. */
static inline void *swm_sys_mremap(void *p, size_t old_len, size_t new_len, int may_move) {
  long r = swm_raw_syscall6(SYS_mremap, (long)p, (long)old_len, (long)new_len, may_move ? 1 /* MREMAP_MAYMOVE */ : 0, 0, 0);
  return swm_sys_failed(r) ? NULL : (void *)r;
}
/* Moves the pages of [p, p + len) to [target, target + len), replacing what
 * was mapped there (MREMAP_MAYMOVE | MREMAP_FIXED); NULL when it fails. */
static inline void *swm_sys_mremap_to(void *p, size_t len, void *target) {
  long r = swm_raw_syscall6(SYS_mremap, (long)p, (long)len, (long)len, 1 | 2 /* MAYMOVE | FIXED */, (long)target, 0);
  return swm_sys_failed(r) ? NULL : (void *)r;
}
static inline int swm_sys_madvise(void *p, size_t len, int advice) {
  return swm_sys_failed(SWM_SYSCALL(SYS_madvise, p, len, advice)) ? -1 : 0;
}
static inline int swm_sys_mprotect(void *p, size_t len, int prot) {
  return swm_sys_failed(SWM_SYSCALL(SYS_mprotect, p, len, prot)) ? -1 : 0;
}
/* Gives the pages back; the range stays mapped and reads as zero next time. */
static inline int swm_sys_decommit(void *p, size_t len) { return swm_sys_madvise(p, len, MADV_DONTNEED); }

/* Guard pages (secure mode). Linux 6.13+ guard regions (MADV_GUARD_INSTALL/
 * REMOVE) neither split the mapping nor count against RLIMIT_DATA. Older
 * kernels get mprotect(PROT_NONE), which splits the mapping: each guard site
 * may cost up to two more entries of vm.max_map_count, so those are spent
 * from a budget (3/8 of the limit, read at start) and, once it is
 * gone, new spans and blocks get no guard (said once on stderr) instead of
 * every mmap failing at the limit. See guard.c. */
/* 1 when the page was made a guard, 0 when it was not (budget spent, or the
 * kernel refused): the caller then treats the page as ordinary memory. */
int swm_guard_install(void *p, size_t len);
/* 1 when the kernel has MADV_GUARD_INSTALL (Linux 6.13+): a guard then
 * costs no mapping, and the default mode puts one after every mmap block. */
int swm_guard_is_free(void);
/* Such a free guard (madvise only, never mprotect, no budget): 1 if made. */
int swm_guard_install_free(void *p, size_t len);
void swm_guard_remove_free(void *p, size_t len);
/* Makes a guard ordinary memory again; 0 on success. */
int swm_guard_remove(void *p, size_t len);
/* `sites` guards went away with their mapping (munmap of a guarded block). */
void swm_guard_unmapped(long sites);

static inline void swm_sys_write(int fd, const void *buf, size_t len) {
  const char *c = (const char *)buf;
  while (len > 0) {
    long n = SWM_SYSCALL(SYS_write, fd, c, len);
    if (n == -EINTR) continue;
    if (n <= 0) break;
    c += n;
    len -= (size_t)n;
  }
}
/* Fills `words` 64-bit words with the kernel's random bytes (getrandom,
 * GRND_NONBLOCK); where it fails (no entropy yet, seccomp), with words mixed
 * from the stack address, the thread id and the index: unpredictable enough
 * for layout, never a failure. */
static inline void swm_sys_random_fill(uint64_t *out, size_t words) {
  if (SWM_SYSCALL(SYS_getrandom, out, words * sizeof *out, 0x0001 /* GRND_NONBLOCK */) == (long)(words * sizeof *out))
    return;
  uint64_t seed = (uint64_t)(uintptr_t)&seed ^ (uint64_t)SWM_SYSCALL(SYS_gettid, 0, 0, 0) << 32;
  for (size_t i = 0; i < words; i++) {
    uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    out[i] = z ^ (z >> 31);
  }
}
static inline uint64_t swm_sys_random(void) {
  uint64_t v;
  swm_sys_random_fill(&v, 1);
  return v;
}

/* Milliseconds on the monotonic clock: the vDSO's clock_gettime, found in
 * the vDSO image itself rather than through libc (clock_gettime is
 * interposable and is read under the page-heap lock); a raw system call when
 * there is no vDSO. `precise`: CLOCK_MONOTONIC (for timeouts), else the
 * cheaper CLOCK_MONOTONIC_COARSE (a few ms resolution, for decay). os.c. */
uint64_t swm_clock_ms(int precise);
static inline uint64_t swm_now_ms(void) { return swm_clock_ms(0); }

/* The one futex pair (private futexes): the lock's slow paths and the
 * memory reserves' waits. Wait blocks while *word == expected, at most
 * timeout_ms (negative: no limit); spurious returns are allowed. */
static inline void swm_futex_wait(void *word, uint32_t expected, long timeout_ms) {
  struct { long tv_sec, tv_nsec; } ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
  swm_raw_syscall6(SYS_futex, (long)word, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, (long)expected,
                   timeout_ms >= 0 ? (long)&ts : 0, 0, 0);
}
static inline void swm_futex_wake(void *word, int count) {
  swm_raw_syscall6(SYS_futex, (long)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count, 0, 0, 0);
}

/* The process environment, walked by Options.swift (never getenv). */
extern char **environ;
static inline char **swm_environ(void) { return environ; }
/* 1 in a set-user-ID or set-group-ID program (AT_SECURE), where the
 * environment must not choose files to write (os.c). */
int swm_secure_execution(void);
/* SWIFTMALLOC_VERSION of the library (swiftmalloc.h), for Swift (shim.c). */
const char *swm_version_text(void);
static inline long swm_sys_getpid(void) { return SWM_SYSCALL(SYS_getpid, 0, 0, 0); }

/* MARK: global state and locks -------------------------------------------- */

/* All allocator state lives in one zero-initialised BSS block (zero is the
 * valid "not yet initialised" state of every structure in it); Swift lays
 * it out as one HeapState, see Heap.swift. Defined in state.c under this asm name. */
#define SWM_STATE_BYTES (128u * 1024u)
extern char swm_state_blob_start __asm__("swm_state_blob") __attribute__((visibility("hidden")));
static inline __attribute__((always_inline)) void *swm_state(void) { return &swm_state_blob_start; }
static inline size_t swm_state_bytes(void) { return SWM_STATE_BYTES; }

/* Lock order (fork takes them all in this order, after the pools' locks):
 *   init < central list of class 1 < ... < class N-1 < page heap
 *   < large-block cache < meta < page map
 *   < quarantine shard 0 < ... < shard SWM_QUARANTINE_SHARDS-1 (secure mode;
 *     each taken with no other lock held, one at a time).
 * A thread holding one may take only locks later in this order.
 * No lock is ever held across a call into libc that may allocate or that a
 * program may interpose: OS calls are raw system calls (above), and the
 * pthread key and atfork handlers are set up with no lock held. */
#define SWM_LOCK_INIT 0
#define SWM_LOCK_PAGEHEAP SWM_NUM_CLASSES
#define SWM_LOCK_LARGE_CACHE (SWM_NUM_CLASSES + 1)
#define SWM_LOCK_META (SWM_NUM_CLASSES + 2)
#define SWM_LOCK_PAGEMAP (SWM_NUM_CLASSES + 3)
#define SWM_LOCK_QUARANTINE (SWM_NUM_CLASSES + 4)
/* Secure mode's quarantine shards, one lock each (Quarantine.swift). */
#define SWM_QUARANTINE_SHARDS 4u
#define SWM_NUM_LOCKS (SWM_NUM_CLASSES + 4 + SWM_QUARANTINE_SHARDS)
static inline __attribute__((always_inline)) swm_lock_t *swm_lock_at(unsigned i) {
  /* block-scope declarations keep the arrays out of Swift's view */
  extern swm_lock_t swm_locks[] __attribute__((visibility("hidden")));
  return &swm_locks[i];
}
static inline unsigned swm_lock_index_pageheap(void) { return SWM_LOCK_PAGEHEAP; }
static inline unsigned swm_lock_index_meta(void) { return SWM_LOCK_META; }
static inline unsigned swm_lock_index_pagemap(void) { return SWM_LOCK_PAGEMAP; }
/* The lock of quarantine shard `shard` (< SWM_QUARANTINE_SHARDS). */
static inline __attribute__((always_inline)) unsigned swm_lock_index_quarantine(unsigned shard) {
  return SWM_LOCK_QUARANTINE + shard;
}
static inline unsigned swm_quarantine_shards(void) { return SWM_QUARANTINE_SHARDS; }
static inline unsigned swm_lock_index_large_cache(void) { return SWM_LOCK_LARGE_CACHE; }
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
  size_t hblks_peak;   /* the most mmap blocks at once */
  size_t hblkhd_peak;  /* the most bytes in mmap blocks at once */
  size_t uordblks;     /* bytes in use (thread caches count as in use) */
  size_t fordblks;     /* free bytes in spans and the page heap */
  size_t keepcost;     /* free bytes at the top of the sbrk heap */
  size_t released;     /* free bytes already given back to the OS (madvise) */
  size_t meta;         /* bytes of allocator metadata */
  size_t threads;      /* live thread caches */
} swm_stats_t;

/* One size class in a report (swm_report_t). Blocks, but `waste` (bytes). */
typedef struct {
  size_t size;             /* block size */
  size_t span_pages;       /* pages per span */
  size_t blocks_per_span;
  size_t spans;            /* spans of the class, full ones included */
  size_t in_use;           /* blocks the program holds */
  size_t cached;           /* free blocks in thread caches (bins, outgoing lists, inboxes; read racily) */
  size_t central;          /* free blocks in the central list, never-used ones of its spans included */
  size_t quarantined;      /* freed blocks in secure mode's quarantine */
  size_t waste;            /* bytes of the spans' tails, which no block covers */
} swm_class_report_t;

/* Everything the reports print (API/Stats.swift fills it, exports/stats.c
 * formats it; docs/statistics.md says what each number counts). */
typedef struct {
  swm_stats_t basic;          /* what mallinfo2 reports */
  size_t in_use, in_use_peak; /* program's blocks + thread-cache blocks + mmap blocks */
  size_t requested, requested_peak; /* bytes held from the OS: heap, mmap blocks, metadata */
  size_t resident;            /* estimate (upper bound) of the resident part of `requested` */
  size_t heap_peak;           /* the most sbrk + region bytes at once */
  /* where the memory is (bytes) */
  size_t program, thread_caches, central, tails, quarantine, guards, dirty, decommitted, mmap_blocks;
  size_t meta_resident, meta_reserved;
  /* system calls and events */
  size_t sbrk_calls, mmap_calls, munmap_calls, mremap_calls, madvise_calls, guard_calls, trims, decays;
  /* thread caches */
  size_t caches_live, cache_budget, cache_share;
  /* settings in effect (trim_threshold SIZE_MAX: never) */
  size_t mmap_threshold, trim_threshold, top_pad, mmap_max, dirty_limit, decay_ms;
  size_t secure, perturb, check;
  /* free page-heap spans: free_runs[n] spans of n pages (1..128), then the longer ones */
  size_t free_runs[129];
  size_t free_long_runs, free_long_bytes, free_long_max;
  swm_class_report_t classes[SWM_NUM_CLASSES];  /* [0] unused */
} swm_report_t;

/* Bytes of [p, p + len) resident in memory (mincore; page aligned p). */
size_t swm_resident_bytes(const void *p, size_t len);

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

/* A line of text for stderr or a file descriptor (shim.c): strings padded
 * to a width (0: none), numbers in a base right-aligned to a width, then
 * one write(2) with the newline. Used for every message we print. */
typedef struct { char buf[256]; size_t n; } swm_line_t;
void swm_line_str(swm_line_t *line, const char *s, size_t width);
/* Exactly `len` bytes of s (which need not end in a NUL). */
void swm_line_bytes(swm_line_t *line, const char *s, size_t len);
void swm_line_num(swm_line_t *line, uint64_t v, unsigned base, size_t width);
void swm_line_write(swm_line_t *line, int fd);

/* Writes "swiftmalloc: <call>: <problem> <ptr>\n" with write(2), then abort(). */
__attribute__((noreturn)) void swm_fatal(const char *call, const char *problem, const void *ptr);
/* Damage found later than it was done (a write after free found when the
 * block leaves quarantine): "swiftmalloc: <problem> 0x<ptr> (found during
 * <call>)\n", then abort(). */
__attribute__((noreturn)) void swm_fatal_found(const char *problem, const void *ptr, const char *call);
/* Writes "swiftmalloc: <text><name><value>\n" (a warning; execution goes
 * on); NULL parts are left out. */
void swm_warn(const char *text, const char *name, const char *value);

/* The pool family's helpers (futex condition, clock, slab registry). */
#include "swm_pool_shim.h"
/* The live page of SWIFTMALLOC_LIVE=1 (live.c, API/Live.swift). */
#include "swm_live.h"

#endif
