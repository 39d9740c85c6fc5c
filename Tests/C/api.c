/*
 * api.c: the C contract of the malloc family, one rule at a time.
 *
 * Rules are glibc's (the tests pass on plain glibc 2.36) except where marked
 * "swiftmalloc rule", which are checked only when our library is loaded (or
 * when glibc is new enough to share the rule).
 */
#include "common.h"

#include <stddef.h>

static const size_t page = 4096;


static void test_alignment(void) {
  enum { KEEP = 64 };
  void *keep[KEEP] = {0};
  for (size_t n = 0; n <= 4096; n++) {
    void *p = malloc(V(n));
    CHECK(p != NULL, "malloc(%zu) returned NULL", n);
    if (!p) continue;
    CHECK(is_aligned(p, 16), "malloc(%zu) = %p is not 16-byte aligned", n, p);
    if (n) memset(p, 0xA5, n);
    /* keep a few alive so blocks come from different places */
    size_t k = n % KEEP;
    free(keep[k]);
    keep[k] = p;
  }
  static const size_t big[] = {4097, 5000, 8191, 16385, 32767, 32768, 32769, 40000, 65535, 65536,
                               100000, 131071, 131072, 131073, 200000, 1 << 20, (4 << 20) + 3,
                               (16 << 20) + 1};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    void *p = malloc(V(big[i]));
    CHECK(p != NULL, "malloc(%zu) returned NULL", big[i]);
    if (!p) continue;
    CHECK(is_aligned(p, 16), "malloc(%zu) = %p is not 16-byte aligned", big[i], p);
    memset(p, 1, big[i]);
    size_t k = i % KEEP;
    free(keep[k]);
    keep[k] = p;
  }
  for (int k = 0; k < KEEP; k++) free(keep[k]);
  /* calloc and realloc results too */
  for (size_t n = 1; n <= 2048; n += 7) {
    void *p = calloc(1, V(n));
    CHECK(p && is_aligned(p, 16), "calloc(1, %zu) = %p not 16-byte aligned", n, p);
    void *q = realloc(p, V(n * 3));
    CHECK(q && is_aligned(q, 16), "realloc(.., %zu) = %p not 16-byte aligned", n * 3, q);
    free(q ? q : p);
  }
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

static void test_malloc_zero(void) {
  enum { N = 200 };
  void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(V(0));
    CHECK(p[i] != NULL, "malloc(0) #%d returned NULL", i);
  }
  uintptr_t a[N];
  for (int i = 0; i < N; i++) a[i] = opaque_addr(p[i]);
  qsort(a, N, sizeof a[0], cmp_ptr);
  int dup = 0;
  for (int i = 1; i < N; i++)
    if (a[i] == a[i - 1] && a[i] != 0) dup++;
  CHECK(dup == 0, "malloc(0) returned %d duplicate pointers among %d live blocks", dup, N);
  for (int i = 0; i < N; i++) free(p[i]);
  /* realloc of a malloc(0) block */
  char *q = malloc(V(0));
  CHECK(q != NULL, "malloc(0) returned NULL");
  q = realloc(q, V(100));
  CHECK(q != NULL, "realloc(malloc(0), 100) returned NULL");
  if (q) memset(q, 7, 100);
  free(q);
}

static void test_free_null(void) {
  errno = 4321;
  free(NULL);
  CHECK(errno == 4321, "free(NULL) changed errno to %d", errno);
  free(NULL);
}

static void test_free_errno(void) {
  static const size_t sizes[] = {1, 32, 1000, 20000, 64 << 10, 100 << 10, 1 << 20, 8 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    enum { N = 24 };
    void *p[N];
    for (int k = 0; k < N; k++) {
      p[k] = malloc(V(sizes[i]));
      REQUIRE(p[k] != NULL, "malloc(%zu) failed", sizes[i]);
      memset(p[k], 0x5A, sizes[i]);
    }
    /* free in an order that makes neighbours coalesce and the top trim */
    for (int k = 0; k < N; k++) {
      int j = (k * 7) % N;
      errno = 1234;
      free(p[j]);
      CHECK(errno == 1234, "free() of a %zu-byte block changed errno to %d (%s)", sizes[i], errno,
            strerror(errno));
    }
  }
  /* realloc(p, 0) frees; it must not clobber errno either way */
}

static void test_calloc(void) {
  static const size_t sizes[] = {1, 15, 16, 17, 100, 1000, 4096, 5000, 20000, 32768, 40000,
                                 64 << 10, 100 << 10, 200 << 10, 1 << 20, 3 << 20};
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      unsigned char *d = malloc(V(n));
      REQUIRE(d != NULL, "malloc(%zu)", n);
      memset(d, 0xFF, n);
      free(d);
      unsigned char *z = launder(calloc(1, V(n)));
      REQUIRE(z != NULL, "calloc(1, %zu)", n);
      size_t bad = 0, first = (size_t)-1;
      for (size_t k = 0; k < n; k++)
        if (z[k] != 0) { bad++; if (first == (size_t)-1) first = k; }
      CHECK(bad == 0, "calloc(1, %zu) after a dirty free: %zu non-zero bytes, first at %zu (reused=%d)",
            n, bad, first, d == z);
      /* count * size form */
      memset(z, 0xEE, n);
      free(z);
      size_t count = n >= 8 ? n / 8 : 1, each = n >= 8 ? 8 : n;
      unsigned long long *w = launder(calloc(V(count), each));
      REQUIRE(w != NULL, "calloc(%zu, %zu)", count, each);
      size_t bad2 = 0;
      unsigned char *wb = (unsigned char *)w;
      for (size_t k = 0; k < count * each; k++) bad2 += wb[k] != 0;
      CHECK(bad2 == 0, "calloc(%zu, %zu) after a dirty free: %zu non-zero bytes", count, each, bad2);
      free(w);
    }
  }
  /* calloc(0, n) and calloc(n, 0) give freeable blocks */
  void *a = calloc(V(0), 16), *b = calloc(16, V(0));
  CHECK(a != NULL && b != NULL, "calloc with a zero factor returned NULL");
  free(a);
  free(b);

  /* overflow */
  errno = 0;
  void *o = calloc(V(SIZE_MAX / 2), 4);
  CHECK(o == NULL, "calloc(SIZE_MAX/2, 4) did not fail");
  CHECK(errno == ENOMEM, "calloc(SIZE_MAX/2, 4): errno %d, want ENOMEM", errno);
  errno = 0;
  o = calloc(V(SIZE_MAX), V(SIZE_MAX));
  CHECK(o == NULL && errno == ENOMEM, "calloc(SIZE_MAX, SIZE_MAX): %p errno %d", o, errno);
  errno = 0;
  o = calloc(V((size_t)1 << 32), V((size_t)1 << 32));
  CHECK(o == NULL && errno == ENOMEM, "calloc(2^32, 2^32): %p errno %d", o, errno);
  errno = 0;
  o = calloc(1, V(SIZE_MAX));
  CHECK(o == NULL && errno == ENOMEM, "calloc(1, SIZE_MAX): %p errno %d", o, errno);
}

static void test_reallocarray(void) {
  errno = 0;
  void *o = reallocarray(NULL, V(SIZE_MAX / 2), 4);
  CHECK(o == NULL && errno == ENOMEM, "reallocarray(NULL, SIZE_MAX/2, 4): %p errno %d", o, errno);
  char *p = malloc(64);
  REQUIRE(p != NULL, "malloc(64)");
  fill(p, 64, 77);
  errno = 0;
  o = reallocarray(launder(p), V(SIZE_MAX / 2), 4);
  CHECK(o == NULL && errno == ENOMEM, "reallocarray(p, SIZE_MAX/2, 4): %p errno %d", o, errno);
  CHECK(verify(p, 64, 77) < 0, "reallocarray overflow damaged the old block");
  char *q = reallocarray(p, V(100), 10);
  CHECK(q != NULL, "reallocarray(p, 100, 10) failed");
  if (q) {
    CHECK(verify(q, 64, 77) < 0, "reallocarray lost the contents");
    memset(q, 1, 1000);
    free(q);
  } else {
    free(p);
  }
}

static void test_realloc_basic(void) {
  static const size_t sizes[] = {0, 1, 100, 5000, 100 << 10, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = realloc(NULL, V(sizes[i]));
    CHECK(p != NULL, "realloc(NULL, %zu) returned NULL", sizes[i]);
    if (p && sizes[i]) memset(p, 3, sizes[i]);
    free(p);
  }
  /* realloc(p, 0) returns NULL and frees p (glibc) */
  static const size_t zs[] = {10, 3000, 64 << 10};
  for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
    void *p = malloc(V(zs[i]));
    REQUIRE(p != NULL, "malloc(%zu)", zs[i]);
    errno = 555;
    void *r = realloc(p, V(0));
    CHECK(r == NULL, "realloc(p[%zu], 0) = %p, want NULL", zs[i], r);
    CHECK(errno == 555, "realloc(p, 0) changed errno to %d", errno);
    if (r) free(r);
  }
  /* that it frees: an mmapped block's bytes leave mallinfo2().hblkhd */
  /* 48 MiB: above glibc's largest dynamic mmap threshold (32 MiB) */
  size_t big = 48 << 20;
  size_t before = mallinfo2().hblkhd;
  void *p = malloc(V(big));
  REQUIRE(p != NULL, "malloc(48 MiB)");
  memset(p, 1, big);
  size_t during = mallinfo2().hblkhd;
  CHECK(during >= before + big, "a 48 MiB block is not an mmap block? hblkhd %zu -> %zu", before, during);
  void *r = realloc(p, V(0));
  CHECK(r == NULL, "realloc(48 MiB block, 0) = %p, want NULL", r);
  size_t after = mallinfo2().hblkhd;
  CHECK(after + big <= during, "realloc(p, 0) did not free the block: hblkhd %zu -> %zu", during, after);
}

static void test_realloc_in_place(void) {
  /* shrinking keeps the block where it is: page runs and mmap blocks, and
   * small blocks whose new size needs the same class (1000 -> 1010 is class
   * 1024); a small block that shrinks to another class moves (swiftmalloc's
   * rule, so that free_sized(q, to) sees the class `to` needs; glibc keeps
   * it in place, so that case is checked only for content below) */
  static const size_t shrink[][2] = {{1020, 1000}, {5000, 4900}, {40000, 33000},
                                     {100 << 10, 50 << 10}, {100 << 10, 100}, {1 << 20, 600 << 10},
                                     {4 << 20, 1 << 20}};
  for (size_t i = 0; i < sizeof shrink / sizeof shrink[0]; i++) {
    size_t from = shrink[i][0], to = shrink[i][1];
    char *p = malloc(V(from));
    REQUIRE(p != NULL, "malloc(%zu)", from);
    fill(p, from, from);
    uintptr_t old = opaque_addr(p);
    char *q = realloc(p, V(to));
    CHECK(q != NULL, "realloc shrink %zu -> %zu failed", from, to);
    if (!q) { free(p); continue; }
    /* secure mode moves every block (fresh canary, fresh guard page) */
    CHECK(secure || opaque_addr(q) == old, "realloc shrink %zu -> %zu moved the block %#lx -> %p", from, to,
          (unsigned long)old, (void *)q);
    CHECK(verify(q, to, from) < 0, "realloc shrink %zu -> %zu lost contents", from, to);
    CHECK(malloc_usable_size(q) >= to, "usable %zu < %zu after shrink", malloc_usable_size(q), to);
    free(q);
  }
  /* a small block shrunk to another class keeps its contents and takes
   * free_sized with its new size */
  static const size_t across[][2] = {{1000, 500}, {1000, 10}, {5000, 4000}};
  for (size_t i = 0; i < sizeof across / sizeof across[0]; i++) {
    size_t from = across[i][0], to = across[i][1];
    char *p = malloc(V(from));
    REQUIRE(p != NULL, "malloc(%zu)", from);
    fill(p, from, from);
    char *q = realloc(p, V(to));
    REQUIRE(q != NULL, "realloc shrink %zu -> %zu failed", from, to);
    CHECK(verify(q, to, from) < 0, "realloc shrink %zu -> %zu lost contents", from, to);
    if (ours) free_sized(q, to);
    else free(q);
  }
  /* growing within malloc_usable_size keeps it too */
  static const size_t grow[] = {1, 17, 24, 100, 1000, 1025, 5000, 30000, 40000, 100000, 1 << 20};
  for (size_t i = 0; i < sizeof grow / sizeof grow[0]; i++) {
    size_t n = grow[i];
    char *p = malloc(V(n));
    REQUIRE(p != NULL, "malloc(%zu)", n);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "usable %zu < %zu", u, n);
    fill(p, n, n + 1);
    uintptr_t old = opaque_addr(p);
    char *q = realloc(p, V(u));
    CHECK(q != NULL, "realloc(p[%zu], usable %zu) failed", n, u);
    if (!q) { free(p); continue; }
    CHECK(secure || opaque_addr(q) == old, "realloc(p[%zu]) to its usable size %zu moved the block", n, u);
    CHECK(verify(q, n, n + 1) < 0, "realloc to usable size lost contents");
    memset(q, 9, u);
    free(q);
  }
}

static void test_realloc_growth(void) {
  /* from 1 byte to 8 MiB and back, contents kept at every step */
  const uintptr_t seed = 4242;
  size_t n = 1;
  unsigned char *p = malloc(1);
  REQUIRE(p != NULL, "malloc(1)");
  fill(p, 1, seed);
  int steps = 0;
  while (n < (8u << 20)) {
    size_t m = n + n / 3 + 1;
    if (m > (8u << 20)) m = 8u << 20;
    unsigned char *q = realloc(p, V(m));
    REQUIRE(q != NULL, "realloc grow %zu -> %zu failed", n, m);
    long bad = verify(q, n, seed);
    CHECK(bad < 0, "realloc grow %zu -> %zu: byte %ld differs", n, m, bad);
    /* extend the pattern over the new bytes */
    for (size_t i = n; i < m; i++) q[i] = pattern_byte(seed, i);
    p = q;
    n = m;
    steps++;
  }
  CHECK(verify(p, n, seed) < 0, "8 MiB block lost its pattern");
  while (n > 1) {
    size_t m = n / 2 + (n > 3 ? 1 : 0);
    if (m >= n) m = n - 1;
    unsigned char *q = realloc(p, V(m));
    REQUIRE(q != NULL, "realloc shrink %zu -> %zu failed", n, m);
    long bad = verify(q, m, seed);
    CHECK(bad < 0, "realloc shrink %zu -> %zu: byte %ld differs", n, m, bad);
    p = q;
    n = m;
    steps++;
  }
  free(p);
  CHECK(steps > 40, "only %d realloc steps", steps);
}

static void test_realloc_failure(void) {
  static const size_t sizes[] = {40, 3000, 64 << 10, 1 << 20};
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1,
                                (size_t)1 << 50};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char *p = malloc(V(n));
    REQUIRE(p != NULL, "malloc(%zu)", n);
    fill(p, n, n * 3);
    for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
      errno = 0;
      char *q = realloc(launder(p), V(huge[h]));
      CHECK(q == NULL, "realloc(p[%zu], %#zx) succeeded", n, huge[h]);
      CHECK(errno == ENOMEM, "realloc(p[%zu], %#zx): errno %d, want ENOMEM", n, huge[h], errno);
      if (q) { p = q; continue; }
      long bad = verify(p, n, n * 3);
      CHECK(bad < 0, "failed realloc(p[%zu], %#zx) damaged byte %ld", n, huge[h], bad);
    }
    CHECK(malloc_usable_size(p) >= n, "block unusable after failed realloc");
    free(p);
  }
}

static void test_huge_malloc(void) {
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 15, PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1,
                                (size_t)1 << 62, (size_t)1 << 50};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    errno = 0;
    void *p = malloc(V(huge[i]));
    CHECK(p == NULL, "malloc(%#zx) succeeded", huge[i]);
    CHECK(errno == ENOMEM, "malloc(%#zx): errno %d, want ENOMEM", huge[i], errno);
    free(p);
  }
  /* the allocator still works afterwards */
  void *p = malloc(100);
  CHECK(p != NULL, "malloc(100) after huge failures");
  free(p);
}

static void test_posix_memalign(void) {
  void *const sentinel = (void *)(uintptr_t)0x5ee1;
  static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4095, 4097};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *m = sentinel;
    int r = posix_memalign(&m, V(bad[i]), 64);
    CHECK(r == EINVAL, "posix_memalign(alignment %zu) = %d, want EINVAL", bad[i], r);
    CHECK(m == sentinel, "posix_memalign(alignment %zu) wrote *memptr = %p on failure", bad[i], m);
    if (r == 0 && m != sentinel) free(m);
  }
  static const size_t sizes[] = {0, 1, 8, 24, 100, 1000, 4096, 5000, 40000, 100000, 300000};
  for (size_t a = 8; a <= (1u << 20); a <<= 1) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      void *m = sentinel;
      int r = posix_memalign(&m, a, V(n));
      CHECK(r == 0, "posix_memalign(%zu, %zu) = %d", a, n, r);
      if (r != 0) continue;
      CHECK(m != NULL && m != sentinel, "posix_memalign(%zu, %zu) gave %p", a, n, m);
      CHECK(is_aligned(m, a), "posix_memalign(%zu, %zu) = %p misaligned", a, n, m);
      CHECK(malloc_usable_size(m) >= n, "posix_memalign(%zu, %zu): usable %zu", a, n, malloc_usable_size(m));
      if (n) memset(m, 0x33, n);
      /* an aligned block is an ordinary block: realloc keeps its content */
      fill(m, n, a + n);
      char *q = realloc(m, V(n + 5000));
      CHECK(q != NULL, "realloc(posix_memalign(%zu, %zu) block, %zu) failed: errno %d", a, n, n + 5000, errno);
      if (!q) { free(m); continue; }
      CHECK(verify(q, n, a + n) < 0, "realloc of a posix_memalign(%zu, %zu) block lost its content", a, n);
      free(q);
    }
  }
  /* zero-size aligned blocks are distinct live blocks, each freeable once */
  for (size_t a = 16; a <= (1u << 20); a <<= 2) {
    enum { LIVE = 16 };
    void *m[LIVE];
    for (int i = 0; i < LIVE; i++) {
      m[i] = NULL;
      int r = posix_memalign(&m[i], a, V(0));
      CHECK(r == 0 && m[i] != NULL, "posix_memalign(%zu, 0) = %d", a, r);
    }
    int dups = 0;
    for (int i = 0; i < LIVE; i++)
      for (int j = 0; j < i; j++) dups += m[i] && m[i] == m[j];
    CHECK(dups == 0, "posix_memalign(%zu, 0): %d pairs of %d live blocks share an address (e.g. %p)", a, dups, LIVE, m[0]);
    if (dups) continue; /* freeing the same pointer twice would abort: leak them */
    for (int i = 0; i < LIVE; i++) free(m[i]);
  }
  static const size_t al[] = {16, 4096, 1 << 20};
  for (size_t i = 0; i < sizeof al / sizeof al[0]; i++) {
    void *m = sentinel;
    int saved = errno = 99;
    int r = posix_memalign(&m, al[i], V(SIZE_MAX));
    CHECK(r == ENOMEM, "posix_memalign(%zu, SIZE_MAX) = %d, want ENOMEM", al[i], r);
    CHECK(m == sentinel, "posix_memalign(%zu, SIZE_MAX) wrote *memptr", al[i]);
    (void)saved;
    m = sentinel;
    r = posix_memalign(&m, al[i], V(SIZE_MAX - al[i] + 1));
    CHECK(r == ENOMEM, "posix_memalign(%zu, SIZE_MAX-%zu+1) = %d, want ENOMEM", al[i], al[i], r);
  }
}

static void test_aligned_alloc_memalign(void) {
  /* swiftmalloc rule (glibc >= 2.38): aligned_alloc with an alignment that
   * is not a power of two fails with EINVAL */
  if (ours || glibc_at_least(2, 38)) {
    errno = 0;
    void *p = aligned_alloc(V(3), 16);
    CHECK(p == NULL, "aligned_alloc(3, 16) = %p, want NULL", p);
    CHECK(errno == EINVAL, "aligned_alloc(3, 16): errno %d, want EINVAL", errno);
    free(p);
  }
  for (size_t a = 1; a <= (1u << 16); a <<= 1) {
    void *p = aligned_alloc(a, V(a * 3));
    CHECK(p && is_aligned(p, a), "aligned_alloc(%zu, %zu) = %p", a, a * 3, p);
    if (p) memset(p, 1, a * 3);
    free(p);
  }
  /* memalign: a non-power-of-two alignment is rounded up */
  static const size_t sizes[] = {1, 24, 100, 5000, 200000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = memalign(V(24), sizes[i]);
    CHECK(p != NULL, "memalign(24, %zu) failed", sizes[i]);
    CHECK(is_aligned(p, 32), "memalign(24, %zu) = %p is not 32-aligned", sizes[i], p);
    if (p) memset(p, 2, sizes[i]);
    free(p);
    p = memalign(V(3000), sizes[i]);
    CHECK(p && is_aligned(p, 4096), "memalign(3000, %zu) = %p is not 4096-aligned", sizes[i], p);
    free(p);
  }
  errno = 0;
  void *p = memalign(V(SIZE_MAX / 2 + 2), 16);
  CHECK(p == NULL, "memalign(SIZE_MAX/2+2, 16) = %p", p);
  CHECK(errno == EINVAL, "memalign(SIZE_MAX/2+2, 16): errno %d, want EINVAL", errno);
  errno = 0;
  p = memalign(64, V(SIZE_MAX - 10));
  CHECK(p == NULL && errno == ENOMEM, "memalign(64, SIZE_MAX-10): %p errno %d", p, errno);
}

static void test_valloc_pvalloc(void) {
  static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 10000, 40000, 100000, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = valloc(V(n));
    CHECK(p != NULL, "valloc(%zu) failed", n);
    if (p) {
      CHECK(is_aligned(p, page), "valloc(%zu) = %p not page aligned", n, p);
      CHECK(malloc_usable_size(p) >= n, "valloc(%zu): usable %zu", n, malloc_usable_size(p));
      if (n) memset(p, 4, n);
    }
    free(p);
    p = pvalloc(V(n));
    CHECK(p != NULL, "pvalloc(%zu) failed", n);
    if (!p) continue;
    /* swiftmalloc rule: pvalloc(0) is one page (glibc: a minimal block) */
    size_t rounded = n == 0 ? (ours ? page : 0) : (n + page - 1) / page * page;
    size_t u = malloc_usable_size(p);
    CHECK(is_aligned(p, page), "pvalloc(%zu) = %p not page aligned", n, p);
    CHECK(u >= rounded, "pvalloc(%zu): usable %zu < %zu", n, u, rounded);
    /* swiftmalloc rule: the block is whole pages (glibc adds a header word) */
    if (ours) CHECK(u % page == 0, "pvalloc(%zu): usable size %zu is not a page multiple", n, u);
    memset(p, 5, rounded);
    free(p);
  }
  errno = 0;
  void *p = pvalloc(V(SIZE_MAX - 100));
  CHECK(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX-100): %p errno %d", p, errno);
}

static void test_usable_size(void) {
  CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
  for (size_t n = 0; n <= 3000; n++) {
    unsigned char *p = malloc(V(n));
    REQUIRE(p != NULL, "malloc(%zu)", n);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
    memset(p, 0x6B, u);
    free(p);
  }
  for (size_t n = 3001; n <= (3u << 20); n = n * 5 / 4 + 13) {
    unsigned char *p = malloc(V(n));
    REQUIRE(p != NULL, "malloc(%zu)", n);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
    memset(p, 0x6B, u);
    /* the whole usable size survives a neighbour being allocated */
    void *other = malloc(V(n));
    if (other) memset(other, 0, malloc_usable_size(other));
    size_t bad = 0;
    for (size_t k = 0; k < u; k++) bad += p[k] != 0x6B;
    CHECK(bad == 0, "malloc(%zu): %zu bytes of the usable size %zu changed by a neighbour", n, bad, u);
    free(other);
    free(p);
  }
}

static void test_free_sized(void) {
  if (!free_sized || !free_aligned_sized) {
    printf("api: free_sized/free_aligned_sized not provided by this libc: skipped\n");
    CHECK(!ours, "swiftmalloc is loaded but free_sized is not resolved");
    return;
  }
  free_sized(NULL, 0);
  free_sized(NULL, 100);
  static const size_t sizes[] = {1, 16, 100, 1000, 4096, 20000, 40000, 64 << 10, 200 << 10, 2 << 20};
  for (int round = 0; round < 4; round++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      void *p = malloc(V(n));
      REQUIRE(p != NULL, "malloc(%zu)", n);
      memset(p, 1, n);
      errno = 321;
      free_sized(p, n);
      CHECK(errno == 321, "free_sized changed errno to %d", errno);
      void *c = calloc(V(n), 1);
      REQUIRE(c != NULL, "calloc(%zu)", n);
      free_sized(c, n);
      for (size_t a = 16; a <= 8192; a <<= 3) {
        size_t m = (n + a - 1) / a * a; /* aligned_alloc wants a multiple (C11) */
        void *q = aligned_alloc(a, V(m));
        REQUIRE(q != NULL, "aligned_alloc(%zu, %zu)", a, m);
        memset(q, 2, m);
        free_aligned_sized(q, a, m);
      }
    }
  }
  free_aligned_sized(NULL, 64, 64);
}

int main(void) {
  t_init("api");
  test_alignment();
  test_malloc_zero();
  test_free_null();
  test_free_errno();
  test_calloc();
  test_reallocarray();
  test_realloc_basic();
  test_realloc_in_place();
  test_realloc_growth();
  test_realloc_failure();
  test_huge_malloc();
  test_posix_memalign();
  test_aligned_alloc_memalign();
  test_valloc_pvalloc();
  test_usable_size();
  test_free_sized();
  return t_finish();
}
