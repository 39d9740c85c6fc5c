/*
 * libc_alias.c: glibc's other entry points reach the same heap.
 * Kind: programs and libraries that call __libc_malloc, __libc_calloc,
 * __libc_realloc, __libc_free, __libc_memalign, __libc_valloc,
 * __libc_pvalloc or the compat cfree (GLIBC_2.2.5) must get the process
 * allocator: any pointer from one family released by the other.
 * References: mjansson/rpmalloc#374, jemalloc#481; tcmalloc and mimalloc
 * export these names.
 * Built twice by run.sh: dynamic (test libc_alias) and, with -DNO_CFREE,
 * fully static with -static libswiftmalloc.a (test libc_alias_static), where
 * libc.a's malloc.o must not be pulled in ("multiple definition of malloc").
 * Right answer (glibc): every mix works; __libc_* blocks are counted by
 * mallinfo2 and, on swiftmalloc, swm_usable_size knows them.
 */
#include "lc.h"

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void __libc_free(void *);
void *__libc_memalign(size_t, size_t);
void *__libc_valloc(size_t);
void *__libc_pvalloc(size_t);
#ifdef NO_CFREE
static void cfree_compat(void *p) { free(p); }
#else
__asm__(".symver cfree_compat, cfree@GLIBC_2.2.5");
void cfree_compat(void *);
#endif

static size_t (*usable)(void *);

/* The block is the process allocator's: on swiftmalloc its own usable-size
 * call accepts it. */
static void ours(const char *what, void *p, size_t n) {
  REQUIRE(p != NULL, "%s returned NULL", what);
  memset(p, 0x5a, n);
  if (usable) CHECK(usable(p) >= n, "%s: swm_usable_size %zu < %zu", what, usable(p), n);
}

int main(void) {
  lc_init("libc_alias", 30);
  usable = lc_ours ? LC_SWM(swm_usable_size) : NULL;

  /* mallinfo2 counts __libc_malloc blocks (64 KiB: below every mmap threshold) */
  size_t before = lc_in_use();
  void *big = __libc_malloc(64 << 10);
  size_t during = lc_in_use();
  CHECK(during >= before + (64 << 10), "a 64 KiB __libc_malloc block is not in mallinfo2 (%zu -> %zu)",
        before, during);
  ours("__libc_malloc(64 KiB)", big, 64 << 10);
  free(big);

  char *p = __libc_malloc(100);
  ours("__libc_malloc", p, 100);
  free(p);
  p = malloc(100);
  __libc_free(p);
  p = __libc_calloc(10, 10);
  REQUIRE(p != NULL, "__libc_calloc returned NULL");
  CHECK(p[0] == 0 && p[99] == 0, "__libc_calloc block not zeroed");
  ours("__libc_calloc", p, 100);
  p = realloc(p, 5000);
  ours("realloc of a __libc_calloc block", p, 5000);
  __libc_free(p);
  p = malloc(50);
  p = __libc_realloc(p, 100000);
  ours("__libc_realloc of a malloc block", p, 100000);
  free(p);
  p = __libc_memalign(4096, 1000);
  ours("__libc_memalign", p, 1000);
  CHECK(((uintptr_t)p & 4095) == 0, "__libc_memalign(4096) gave %p", (void *)p);
  free(p);
  p = __libc_valloc(10);
  ours("__libc_valloc", p, 10);
  CHECK(((uintptr_t)p & 4095) == 0, "__libc_valloc gave %p", (void *)p);
  free(p);
  p = __libc_pvalloc(10);
  ours("__libc_pvalloc", p, 4096);
  free(p);
  p = strdup("from libc");
  __libc_free(p);
  p = malloc(64);
  cfree_compat(p);
  p = __libc_malloc(64);
  cfree_compat(p);
  return lc_finish();
}
