/*
 * mallctl.c (included by exports.c): jemalloc's control interface, for the
 * names that programs built for jemalloc call to give memory back or to
 * read the heap's size, so that they do the same under swiftmalloc. Redis,
 * for one, links jemalloc and calls "arena.<n>.purge" after FLUSHALL and on
 * MEMORY PURGE, and reads "stats.*" for INFO memory; preloaded, swiftmalloc
 * gets the program's memory, so these calls must reach it.
 *
 *   int mallctl(const char *name, void *oldp, size_t *oldlenp,
 *               void *newp, size_t newlen);
 *
 * Names (jemalloc 5's meaning, swiftmalloc's numbers, docs/statistics.md):
 *   arena.<i>.purge, arena.<i>.decay   (any <i>, MALLCTL_ARENAS_ALL too):
 *       malloc_trim(0): the caller's thread cache, every free page and kept
 *       mmap block go back to the OS. Write-only, no value.
 *   thread.tcache.flush   the caller's thread cache goes to the central lists.
 *   arenas.narenas        unsigned, 1 (one shared heap).
 *   epoch                 uint64_t, read/write; the statistics are always
 *                         current, so it only counts writes.
 *   stats.allocated       size_t: bytes of blocks the program holds.
 *   stats.active          size_t: allocated plus free blocks in thread caches
 *                         and the central lists (pages in small spans).
 *   stats.resident        size_t: resident bytes of the heap, an upper bound.
 *   stats.mapped          size_t: bytes held from the OS.
 *   stats.retained        size_t: free bytes already given back (decommitted).
 * Errors, as jemalloc 5's: ENOENT for any other name; EINVAL when *oldlenp is
 * not the value's size (the first *oldlenp bytes of it are copied and
 * *oldlenp says how many), or newp comes with newlen not its size; EPERM for
 * newp or newlen given to a read-only name, and oldp or oldlenp given to a
 * write-only one (the purges). A read needs both oldp and oldlenp (either
 * NULL reads nothing). Nothing here allocates.
 */
#include <string.h>

extern void swmcore_thread_cache_flush(void);

static uint64_t swm_mallctl_epoch = 1;

/* Copies a value out as jemalloc does (its READ()): nothing without both
 * oldp and oldlenp; a wrong length gets what fits, and EINVAL. */
static int swm_mallctl_read(void *oldp, size_t *oldlenp, const void *value, size_t size) {
  if (oldp == NULL || oldlenp == NULL) return 0;
  if (*oldlenp != size) {
    size_t copied = *oldlenp < size ? *oldlenp : size;
    memcpy(oldp, value, copied);
    *oldlenp = copied;
    return EINVAL;
  }
  memcpy(oldp, value, size);
  return 0;
}

/* "arena.<digits>.<action>": 1 when name has that shape and action is one of
 * the two that give memory back. */
static int swm_mallctl_arena_purge(const char *name) {
  if (strncmp(name, "arena.", 6) != 0) return 0;
  const char *p = name + 6;
  if (*p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9') p++;
  return strcmp(p, ".purge") == 0 || strcmp(p, ".decay") == 0;
}

static int swm_mallctl_stat(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  static const char *const names[] = {"allocated", "active", "resident", "mapped", "retained"};
  size_t which = 0;
  while (which < 5 && strcmp(name, names[which]) != 0) which++;
  if (which == 5) return ENOENT;
  if (newp != NULL || newlen != 0) return EPERM;
  swm_report_t r;
  swmcore_collect_report(&r);
  size_t values[5] = {r.program, r.program + r.thread_caches + r.central, r.resident, r.requested, r.decommitted};
  return swm_mallctl_read(oldp, oldlenp, &values[which], sizeof(size_t));
}

SWM_EXPORT int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  if (name == NULL) return ENOENT;
  int purge = swm_mallctl_arena_purge(name);
  if (purge || strcmp(name, "thread.tcache.flush") == 0) {
    if (oldp != NULL || oldlenp != NULL || newp != NULL || newlen != 0) return EPERM;
    if (purge) swmcore_malloc_trim(0);
    else swmcore_thread_cache_flush();
    return 0;
  }
  if (strcmp(name, "arenas.narenas") == 0) {
    unsigned one = 1;
    return newp != NULL || newlen != 0 ? EPERM : swm_mallctl_read(oldp, oldlenp, &one, sizeof one);
  }
  if (strcmp(name, "epoch") == 0) {
    if (newp != NULL) {
      if (newlen != sizeof(uint64_t)) return EINVAL;
      __atomic_fetch_add(&swm_mallctl_epoch, 1, __ATOMIC_RELAXED);
    }
    uint64_t now = __atomic_load_n(&swm_mallctl_epoch, __ATOMIC_RELAXED);
    return swm_mallctl_read(oldp, oldlenp, &now, sizeof now);
  }
  if (strncmp(name, "stats.", 6) == 0) return swm_mallctl_stat(name + 6, oldp, oldlenp, newp, newlen);
  return ENOENT;
}
