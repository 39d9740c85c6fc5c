/*
 * swiftmalloc.h: the public interface of libswiftmalloc beyond the standard
 * malloc family (which it exports under the usual names, with glibc's
 * semantics: see README.md and swiftmalloc(3)).
 *
 * The swm_ functions reach the same allocator without interposing malloc:
 * a program can use them while the rest of the process keeps its own malloc.
 *
 * Copyright (c) 2026 the swiftmalloc authors.
 * SPDX-License-Identifier: MIT (see the LICENSE file that comes with swiftmalloc)
 */
#ifndef SWIFTMALLOC_H
#define SWIFTMALLOC_H

#include <stddef.h>

/* The version of this header; swm_version() returns the library's. */
#define SWIFTMALLOC_VERSION_MAJOR 0
#define SWIFTMALLOC_VERSION_MINOR 1
#define SWIFTMALLOC_VERSION_PATCH 0
#define SWIFTMALLOC_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* "MAJOR.MINOR.PATCH" of the library in use (SWIFTMALLOC_VERSION when it was
 * built); also shown by malloc_stats() and malloc_info(). */
const char *swm_version(void);

/* swiftmalloc's own mallopt() parameters (glibc's are in <malloc.h>); each
 * returns 1 when the value was taken, 0 when it is out of range. The same
 * settings are read from the environment at start (README, swiftmalloc(3)). */
#define SWM_M_CACHE_BUDGET (-1001) /* bytes all thread caches may hold (SWIFTMALLOC_CACHE_BUDGET) */
#define SWM_M_DIRTY_LIMIT (-1002)  /* free bytes the page heap keeps resident (SWIFTMALLOC_DIRTY_LIMIT) */
#define SWM_M_DECAY_MS (-1003)     /* ms before unused free pages go back (SWIFTMALLOC_DECAY_MS) */

/* The statistics as one JSON object (docs/stats-schema.json, described in
 * docs/statistics.md), written into buf (at most len - 1 bytes, then a NUL;
 * nothing when len is 0). Returns the length of the whole object: when it is
 * len or more, the text was cut, and a buffer of the result + 1 bytes holds
 * it. No allocation, no stdio; any thread, any time. */
size_t swm_stats_json(char *buf, size_t len);

void  *swm_malloc(size_t size);
void   swm_free(void *p);
void  *swm_calloc(size_t count, size_t size);
void  *swm_realloc(void *p, size_t size);
int    swm_posix_memalign(void **memptr, size_t alignment, size_t size);
size_t swm_usable_size(void *p);

/* C23 / glibc 2.39 names, for libcs whose headers lack them. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

/* MARK: pools (README.md, section "Pools") ---------------------------------- */
/* Four pools, each with one name in C, Swift and the README: the region pool
 * (swm_pool_*, RegionPool), the slab cache (swm_cache_*, SlabCache), the
 * memory reserve (swm_mempool_*, MemoryReserve) and the static heap
 * (swm_static_*, StaticHeap). */

/* Region pools: bump allocation from chained blocks, freed all at once.
 * One thread at a time per pool. */
typedef struct swm_pool swm_pool_t;
swm_pool_t *swm_pool_create(size_t block_size);
void *swm_pool_alloc(swm_pool_t *pool, size_t size);      /* 16-byte aligned */
void *swm_pool_nalloc(swm_pool_t *pool, size_t size);     /* unaligned, packed */
void *swm_pool_calloc(swm_pool_t *pool, size_t size);
void *swm_pool_memalign(swm_pool_t *pool, size_t size, size_t alignment);
int   swm_pool_free(swm_pool_t *pool, void *p);  /* 0: large block freed; -1: not a large block */
int   swm_pool_cleanup_add(swm_pool_t *pool, void (*handler)(void *data), void *data);
void  swm_pool_reset(swm_pool_t *pool);
void  swm_pool_destroy(swm_pool_t *pool);

/* Slab caches: constructed objects of one size. Thread-safe. */
typedef struct swm_cache swm_cache_t;
swm_cache_t *swm_cache_create(const char *name, size_t size, size_t align,
                              void (*ctor)(void *obj), void (*dtor)(void *obj));
void  *swm_cache_alloc(swm_cache_t *cache);
void   swm_cache_free(swm_cache_t *cache, void *obj);
size_t swm_cache_shrink(swm_cache_t *cache);   /* empty slabs released; returns bytes returned */
size_t swm_cache_destroy(swm_cache_t *cache);  /* returns objects still allocated (and says so on stderr) */
void   swm_slabinfo(int fd);                   /* /proc/slabinfo-style table of every cache */

/* Memory reserves: min_nr elements guaranteed. Thread-safe. */
typedef struct swm_mempool swm_mempool_t;
typedef void *(*swm_mempool_alloc_fn)(void *pool_data);
typedef void  (*swm_mempool_free_fn)(void *element, void *pool_data);
#define SWM_MEMPOOL_WAIT 1
swm_mempool_t *swm_mempool_create(int min_nr, swm_mempool_alloc_fn alloc_fn,
                                  swm_mempool_free_fn free_fn, void *pool_data);
swm_mempool_t *swm_mempool_create_kmalloc(int min_nr, size_t element_size);
swm_mempool_t *swm_mempool_create_slab(int min_nr, swm_cache_t *cache);
void *swm_mempool_alloc(swm_mempool_t *pool, int flags);
void *swm_mempool_alloc_timeout(swm_mempool_t *pool, long timeout_ms);
void  swm_mempool_free(swm_mempool_t *pool, void *element);
int   swm_mempool_resize(swm_mempool_t *pool, int new_min_nr);  /* 0 on success */
void  swm_mempool_destroy(swm_mempool_t *pool);

/* Static heaps: an explicit allocator inside a caller's buffer; no system
 * call, no malloc. One thread at a time per heap. */
typedef struct swm_static swm_static_t;
typedef struct { size_t used, free, largest_free, free_blocks; } swm_static_stats_t;
swm_static_t *swm_static_init(void *buf, size_t len);  /* bookkeeping lives inside buf */
void  *swm_static_alloc(swm_static_t *heap, size_t size);
void   swm_static_free(swm_static_t *heap, void *p);
void  *swm_static_realloc(swm_static_t *heap, void *p, size_t size);
size_t swm_static_usable_size(swm_static_t *heap, void *p);
void   swm_static_stats(swm_static_t *heap, swm_static_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
