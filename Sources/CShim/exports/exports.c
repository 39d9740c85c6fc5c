/*
 * exports.c: the symbols libswiftmalloc exports. Each is a one-line forward
 * into the Swift core (swmcore_*, hidden by the version script); the C
 * semantics live in Sources/SwiftMalloc/API. Built by the Makefile only: the
 * SwiftPM build must not replace the test process's malloc.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <malloc.h>
#include <pthread.h>
#include "swm_shim.h"
#include "swiftmalloc.h"

#define SWM_EXPORT __attribute__((visibility("default")))

extern void *swmcore_malloc(size_t);
extern void swmcore_free(void *);
extern void *swmcore_calloc(size_t, size_t);
extern void *swmcore_realloc(void *, size_t);
extern void *swmcore_reallocarray(void *, size_t, size_t);
extern int swmcore_posix_memalign(void **, size_t, size_t);
extern void *swmcore_aligned_alloc(size_t, size_t);
extern void *swmcore_memalign(size_t, size_t);
extern void *swmcore_valloc(size_t);
extern void *swmcore_pvalloc(size_t);
extern size_t swmcore_usable_size(void *);
extern void swmcore_free_sized(void *, size_t);
extern void swmcore_free_aligned_sized(void *, size_t, size_t);
extern int swmcore_mallopt(int, int);
extern int swmcore_malloc_trim(size_t);
extern void swmcore_collect_stats(swm_stats_t *);

/* MARK: the malloc family */
SWM_EXPORT void *malloc(size_t n) { return swmcore_malloc(n); }
SWM_EXPORT void free(void *p) { swmcore_free(p); }
SWM_EXPORT void *calloc(size_t c, size_t n) { return swmcore_calloc(c, n); }
SWM_EXPORT void *realloc(void *p, size_t n) { return swmcore_realloc(p, n); }
SWM_EXPORT void *reallocarray(void *p, size_t c, size_t n) { return swmcore_reallocarray(p, c, n); }
SWM_EXPORT int posix_memalign(void **m, size_t a, size_t n) { return swmcore_posix_memalign(m, a, n); }
SWM_EXPORT void *aligned_alloc(size_t a, size_t n) { return swmcore_aligned_alloc(a, n); }
SWM_EXPORT void *memalign(size_t a, size_t n) { return swmcore_memalign(a, n); }
SWM_EXPORT void *valloc(size_t n) { return swmcore_valloc(n); }
SWM_EXPORT void *pvalloc(size_t n) { return swmcore_pvalloc(n); }
SWM_EXPORT size_t malloc_usable_size(void *p) { return swmcore_usable_size(p); }
SWM_EXPORT void free_sized(void *p, size_t n) { swmcore_free_sized(p, n); }
SWM_EXPORT void free_aligned_sized(void *p, size_t a, size_t n) { swmcore_free_aligned_sized(p, a, n); }
SWM_EXPORT int mallopt(int param, int value) { return swmcore_mallopt(param, value); }
SWM_EXPORT int malloc_trim(size_t pad) { return swmcore_malloc_trim(pad); }

/* MARK: glibc's other names for the same calls
 * glibc exports its allocator a second time under __libc_* (old binaries,
 * and libraries that wrap malloc, call them directly) and keeps cfree for
 * binaries linked before 2.26. Each must reach this heap: a block from
 * __libc_malloc freed by free (or the reverse) is one allocator's business.
 * Defining them also keeps a static link from pulling libc.a's malloc.o
 * (which defines malloc again) when a program references one of them.
 * cfree is exported unversioned, as tcmalloc and mimalloc do: a reference to
 * cfree@GLIBC_2.2.5 binds to the first unversioned definition in lookup
 * order, ours when preloaded; a versioned definition would need named
 * version nodes for every export, and those would stop our malloc from
 * matching references to malloc@GLIBC_2.2.5. */
SWM_EXPORT void *__libc_malloc(size_t n) { return swmcore_malloc(n); }
SWM_EXPORT void __libc_free(void *p) { swmcore_free(p); }
SWM_EXPORT void *__libc_calloc(size_t c, size_t n) { return swmcore_calloc(c, n); }
SWM_EXPORT void *__libc_realloc(void *p, size_t n) { return swmcore_realloc(p, n); }
SWM_EXPORT void *__libc_memalign(size_t a, size_t n) { return swmcore_memalign(a, n); }
SWM_EXPORT void *__libc_valloc(size_t n) { return swmcore_valloc(n); }
SWM_EXPORT void *__libc_pvalloc(size_t n) { return swmcore_pvalloc(n); }
#ifndef SWM_ARCHIVE
SWM_EXPORT void cfree(void *p) { swmcore_free(p); }
#else
/* libswiftmalloc.a: a program linked with it binds its (old) references to
 * cfree@GLIBC_2.2.5 to this definition of that very version. */
SWM_EXPORT void swm_cfree_compat(void *p) { swmcore_free(p); }
__asm__(".symver swm_cfree_compat, cfree@GLIBC_2.2.5");
#endif

/* MARK: the swm_ entry set */
SWM_EXPORT void *swm_malloc(size_t n) { return swmcore_malloc(n); }
SWM_EXPORT void swm_free(void *p) { swmcore_free(p); }
SWM_EXPORT void *swm_calloc(size_t c, size_t n) { return swmcore_calloc(c, n); }
SWM_EXPORT void *swm_realloc(void *p, size_t n) { return swmcore_realloc(p, n); }
SWM_EXPORT int swm_posix_memalign(void **m, size_t a, size_t n) { return swmcore_posix_memalign(m, a, n); }
SWM_EXPORT size_t swm_usable_size(void *p) { return swmcore_usable_size(p); }

/* MARK: statistics (formatting is C's job; the numbers come from Swift) */

SWM_EXPORT struct mallinfo2 mallinfo2(void) {
  swm_stats_t s;
  swmcore_collect_stats(&s);
  struct mallinfo2 m = {0};
  m.arena = s.arena + s.region_mmap;
  m.ordblks = 0;
  m.hblks = s.hblks;
  m.hblkhd = s.hblkhd;
  m.uordblks = s.uordblks;
  m.fordblks = s.fordblks;
  m.keepcost = s.keepcost;
  return m;
}

/* The old interface, its int fields saturated as glibc's overflow. */
SWM_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo m = {0};
  m.arena = (int)m2.arena;
  m.hblks = (int)m2.hblks;
  m.hblkhd = (int)m2.hblkhd;
  m.uordblks = (int)m2.uordblks;
  m.fordblks = (int)m2.fordblks;
  m.keepcost = (int)m2.keepcost;
  return m;
}

/* malloc_stats, malloc_info, swm_stats_json and the report at exit: in this
 * very object, so that a static link that takes malloc takes them too (and
 * never libc.a's malloc_stats beside our malloc). */
#include "stats.c"
#include "mallctl.c"

/* MARK: version (swiftmalloc.h: SWIFTMALLOC_VERSION_MAJOR/MINOR/PATCH) */
SWM_EXPORT const char *swm_version(void) { return SWIFTMALLOC_VERSION; }
