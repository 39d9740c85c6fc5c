/*
 * swm_live.h: the live page (SWIFTMALLOC_LIVE=1), read by `swiftmalloc top`.
 *
 * When the environment has SWIFTMALLOC_LIVE=1 the library creates, at start,
 * /dev/shm/swiftmalloc-<uid>-<pid> (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0400:
 * only its owner may read it, nobody may open it for writing), maps it shared
 * and closes the descriptor; the destructor unlinks it at exit. The heap's
 * counters are written into it on slow paths only (live.c, API/Live.swift):
 * the class of each thread-cache refill or overflow, and the totals at most
 * once per tick of the coarse clock (about 4 ms). The fast paths do not know
 * the page exists.
 *
 * A reader sees a consistent snapshot through `seq` (a seqlock): the writer
 * makes it odd, writes, makes it even again; a reader copies the page
 * between two equal even readings. All fields are little-endian 64-bit words
 * so that a reader in any language can take them by offset; the layout is
 * versioned by `magic` + `version` and `bytes`. The reader in this tree is
 * Sources/CLiveReader (used by Sources/SwiftMallocCLI/Top.swift).
 */
#ifndef SWM_LIVE_H
#define SWM_LIVE_H

#include <stdint.h>

#define SWM_LIVE_MAGIC 0x314556494c4d5753ull /* "SWMLIVE1" in memory order */
#define SWM_LIVE_VERSION 1
#define SWM_LIVE_MAX_CLASSES 64
#define SWM_LIVE_PATH_PREFIX "/dev/shm/swiftmalloc-"

/* One size class. Blocks in thread caches count as in use (as in mallinfo2). */
typedef struct {
  uint64_t size;        /* block size in bytes */
  uint64_t per_span;    /* blocks per span */
  uint64_t spans;       /* spans of this class */
  uint64_t free;        /* free blocks on the central list (in use = spans * per_span - free) */
} swm_live_class_t;

typedef struct {
  uint64_t magic;          /* SWM_LIVE_MAGIC */
  uint64_t version;        /* SWM_LIVE_VERSION */
  uint64_t bytes;          /* sizeof(swm_live_page_t) */
  uint64_t seq;            /* odd while being written */
  uint64_t pid;            /* the process the page describes */
  uint64_t started_ms;     /* CLOCK_MONOTONIC_COARSE, ms, when the page was made */
  uint64_t updated_ms;     /* the same clock at the last update of the totals */
  uint64_t updates;        /* updates of the totals so far */
  uint64_t class_updates;  /* updates of one class so far */
  uint64_t secure;         /* 1 in secure mode */
  /* totals, as swm_stats_t (swm_shim.h) */
  uint64_t arena;          /* sbrk heap bytes */
  uint64_t region_mmap;    /* mmap regions of the page heap */
  uint64_t hblks;          /* mmap blocks */
  uint64_t hblkhd;         /* bytes in mmap blocks */
  uint64_t hblks_peak;
  uint64_t hblkhd_peak;
  uint64_t uordblks;       /* bytes in use in the heap (not mmap blocks) */
  uint64_t fordblks;       /* free bytes in the heap */
  uint64_t keepcost;       /* free bytes at the sbrk top */
  uint64_t released;       /* free bytes given back to the OS */
  uint64_t meta;           /* metadata bytes */
  uint64_t threads;        /* live thread caches */
  uint64_t in_use_peak;    /* the most uordblks + hblkhd seen at an update */
  uint64_t quarantine;     /* bytes in quarantine (secure mode), as of the last full update */
  uint64_t class_count;    /* entries of classes[] in use (class 0 is no class) */
  swm_live_class_t classes[SWM_LIVE_MAX_CLASSES];
} swm_live_page_t;

/* Library side (live.c): nonzero while this process publishes a page. */
static inline __attribute__((always_inline)) int swm_live_on(void) {
  extern int swm_live_enabled __attribute__((visibility("hidden")));
  return __atomic_load_n(&swm_live_enabled, __ATOMIC_RELAXED);
}
/* The page for writing (seq made odd), or NULL when off or another thread
 * is writing it right now (the caller skips: the next slow path writes).
 * `*totals` in: 1 forces the totals, 0 asks, -1 wants the page only when
 * the totals are due (else NULL); out: 1 when the caller writes them. */
swm_live_page_t *swm_live_begin(int *totals);
/* Makes seq even again. */
void swm_live_end(swm_live_page_t *page);
static inline __attribute__((returns_nonnull)) swm_live_class_t *swm_live_class(swm_live_page_t *page, uint32_t c) { return &page->classes[c]; }

#endif
