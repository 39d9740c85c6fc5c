/*
 * exports.c: the symbols libswiftmalloc exports. Each is a one-line forward
 * into the Swift core (swmcore_*, hidden by the version script); the C
 * semantics live in Sources/SwiftMalloc/API. Built by the Makefile only: the
 * SwiftPM build must not replace the test process's malloc.
 */
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
extern int swmcore_stats_at_exit(void);

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

/* glibc's report first (tools parse it: one arena, then the totals with
 * mmap blocks), then ours. Not a cancellation point, as glibc's is not (BZ
 * #22830): a thread with a pending cancel prints the whole report. */
SWM_EXPORT void malloc_stats(void) {
  swm_stats_t s;
  swmcore_collect_stats(&s);
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  size_t system = s.arena + s.region_mmap;
  size_t in_use = s.uordblks;
  fprintf(stderr,
          "Arena 0:\n"
          "system bytes     = %10zu\n"
          "in use bytes     = %10zu\n"
          "Total (incl. mmap):\n"
          "system bytes     = %10zu\n"
          "in use bytes     = %10zu\n"
          "max mmap regions = %10zu\n"
          "max mmap bytes   = %10zu\n",
          system, in_use, system + s.hblkhd, in_use + s.hblkhd, s.hblks_peak, s.hblkhd_peak);
  fprintf(stderr,
          "swiftmalloc statistics\n"
          "  version         %12s\n"
          "  sbrk heap       %12zu bytes\n"
          "  mmap regions    %12zu bytes (page heap, when sbrk could not grow)\n"
          "  in use          %12zu bytes\n"
          "  free            %12zu bytes (%zu of them returned to the OS)\n"
          "  top (trimmable) %12zu bytes\n"
          "  mmap blocks     %12zu bytes in %zu blocks\n"
          "  metadata        %12zu bytes\n"
          "  thread caches   %12zu\n",
          SWIFTMALLOC_VERSION, s.arena, s.region_mmap, s.uordblks, s.fordblks, s.released, s.keepcost,
          s.hblkhd, s.hblks, s.meta, s.threads);
  pthread_setcancelstate(cancel_state, NULL);
}

SWM_EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0) { errno = EINVAL; return -1; }
  swm_stats_t s;
  swmcore_collect_stats(&s);
  fprintf(fp,
          "<malloc version=\"1\" swiftmalloc=\"" SWIFTMALLOC_VERSION "\">\n"
          "<heap nr=\"0\">\n"
          "<sizes>\n</sizes>\n"
          "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
          "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n"
          "<aspace type=\"total\" size=\"%zu\"/>\n"
          "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
          "</heap>\n"
          "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
          "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
          "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n"
          "<aspace type=\"total\" size=\"%zu\"/>\n"
          "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
          "</malloc>\n",
          s.fordblks, s.arena + s.region_mmap, s.arena + s.region_mmap,
          s.arena + s.region_mmap, s.arena + s.region_mmap,
          s.fordblks, s.hblks, s.hblkhd,
          s.arena + s.region_mmap + s.hblkhd, s.arena + s.region_mmap + s.hblkhd,
          s.arena + s.region_mmap + s.hblkhd, s.arena + s.region_mmap + s.hblkhd);
  return 0;
}

/* SWIFTMALLOC_STATS=1: report at exit what the allocator did. */
__attribute__((destructor)) static void swm_report_at_exit(void) {
  if (swmcore_stats_at_exit()) malloc_stats();
}

/* MARK: version (swiftmalloc.h: SWIFTMALLOC_VERSION_MAJOR/MINOR/PATCH) */
SWM_EXPORT const char *swm_version(void) { return SWIFTMALLOC_VERSION; }
