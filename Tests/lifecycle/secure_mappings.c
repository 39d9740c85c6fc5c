/*
 * secure_mappings.c: secure mode must not run out of mappings.
 * Kind: without MADV_GUARD_INSTALL (kernels before 6.13) guard pages fall
 * back to mprotect, which splits mappings; at vm.max_map_count (65,530 by
 * default) mmap/mprotect fail and malloc returns NULL while gigabytes are
 * free. glibc reference: glibc's malloc needs no guard pages; its mmap'd
 * chunks merge into few mappings.
 * Run under oldkernel_run (which also allows one warning line on stderr),
 * with the secure library or SWIFTMALLOC_SECURE=1: 80,000 live blocks of
 * 140 KB and 400,000 small ones, every one non-NULL and writable.
 * Right answer (glibc): no NULL.
 */
#include "lc.h"

enum { BIG = 80000, BIG_SIZE = 140000, SMALL = 400000 };

static int mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  int n = 0, c;
  if (!f) return -1;
  while ((c = getc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static int fill(void **v, int count, size_t (*size)(int), const char *what) {
  for (int i = 0; i < count; i++) {
    size_t n = size(i);
    char *p = v[i] = malloc(n);
    if (!p) {   /* (CHECK evaluates its arguments every time: only here) */
      int e = errno;
      CHECK(p != NULL, "%s #%d of %d (%zu bytes): NULL, errno %s, %d mappings", what, i, count, n, strerror(e),
            mappings());
      return i;
    }
    p[0] = 1;
    p[n - 1] = 2;
  }
  return count;
}

static size_t big_size(int i) { (void)i; return BIG_SIZE; }
static size_t small_size(int i) { return 16 + (size_t)(i % 32) * 16; }

int main(void) {
  lc_init("secure_mappings", 50);
  char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  errno = 0;
  REQUIRE(madvise(page, 4096, 102) == -1 && errno == EINVAL,
          "madvise(MADV_GUARD_INSTALL) did not fail with EINVAL: not run under oldkernel_run");
  munmap(page, 4096);

  void **big = calloc(BIG, sizeof *big), **small = calloc(SMALL, sizeof *small);
  REQUIRE(big && small, "pointer arrays");
  int nb = fill(big, BIG, big_size, "140 KB block");
  int ns = fill(small, SMALL, small_size, "small block");
  printf("%d blocks of 140 KB and %d small blocks live, %d mappings\n", nb, ns, mappings());
  for (int i = 0; i < ns; i++) free(small[i]);
  for (int i = 0; i < nb; i++) free(big[i]);
  free(big);
  free(small);
  return lc_finish();
}
