/*
 * sizes.c: every size, and a long random run against a shadow table.
 *   1. for every size 1..40000: malloc, usable size >= size, write every byte
 *      (kept alive among a ring of recent blocks whose patterns are verified
 *      when they are freed, so overlapping blocks are caught), free;
 *   2. 1,000,000 random operations (malloc, calloc, realloc, free; sizes
 *      weighted to small, a few medium and large) on a table of live blocks,
 *      each block's content verified before it is freed or reallocated.
 */
#include "common.h"

static void test_every_size(void) {
  enum { RING = 16 };
  void *ring[RING] = {0};
  size_t ring_n[RING] = {0};
  long bad_usable = 0, bad_content = 0, bad_align = 0;
  for (size_t n = 1; n <= 40000; n++) {
    int r = (int)(n % RING);
    if (ring[r]) {
      long off = verify_fast(ring[r], ring_n[r], (uint64_t)ring_n[r]);
      if (off >= 0 && bad_content++ < 5)
        fprintf(stderr, "sizes: block of %zu bytes at %p damaged at offset %ld\n", ring_n[r], ring[r], off);
      free(ring[r]);
    }
    unsigned char *p = malloc(V(n));
    REQUIRE(p != NULL, "malloc(%zu) returned NULL", n);
    size_t u = malloc_usable_size(p);
    if (u < n && bad_usable++ < 5) fprintf(stderr, "sizes: malloc_usable_size(malloc(%zu)) = %zu\n", n, u);
    if (!is_aligned(p, 16)) bad_align++;
    /* the whole usable size is writable; then the pattern over the request */
    memset(p, 0xC3, u);
    fill_fast(p, n, (uint64_t)n);
    ring[r] = p;
    ring_n[r] = n;
  }
  for (int r = 0; r < RING; r++) {
    if (ring[r] && verify_fast(ring[r], ring_n[r], (uint64_t)ring_n[r]) >= 0) bad_content++;
    free(ring[r]);
  }
  CHECK(bad_usable == 0, "%ld sizes in 1..40000 had a usable size below the request", bad_usable);
  CHECK(bad_content == 0, "%ld blocks in 1..40000 were damaged while live", bad_content);
  CHECK(bad_align == 0, "%ld blocks in 1..40000 were not 16-byte aligned", bad_align);
}

enum { SLOTS = 8192, OPS = 1000000 };

struct slot {
  unsigned char *p;
  size_t n;
  uint64_t seed;
};

static struct slot table[SLOTS];

static size_t weighted_size(uint64_t *rng) {
  uint64_t r = rng_next(rng);
  unsigned pick = (unsigned)(r % 1000);
  r >>= 10;
  if (pick < 800) return 1 + r % 256;            /* 80%: tiny */
  if (pick < 950) return 257 + r % 3840;         /* 15%: up to 4 KiB */
  if (pick < 995) return 4097 + r % 61440;       /* 4.5%: up to 64 KiB */
  if (pick < 999) return 65537 + r % 200000;     /* 0.4%: medium and mmap */
  return (1 << 20) + r % (3 << 20);              /* 0.1%: large */
}

static long damaged, zero_errors, null_results;

static void check_slot(struct slot *s, const char *when) {
  long off = verify_fast(s->p, s->n, s->seed);
  if (off >= 0 && damaged++ < 5)
    fprintf(stderr, "sizes: %zu-byte block %p damaged at offset %ld (before %s)\n", s->n, (void *)s->p, off, when);
}

static void test_random_run(void) {
  uint64_t rng = 0xC0FFEEull;
  long mallocs = 0, callocs = 0, reallocs = 0, frees = 0;
  for (long op = 0; op < OPS; op++) {
    struct slot *s = &table[rng_next(&rng) % SLOTS];
    uint64_t action = rng_next(&rng) % 10;
    if (s->p) {
      check_slot(s, action < 3 ? "realloc" : "free");
      if (action < 3) {
        size_t n = weighted_size(&rng);
        unsigned char *q = realloc(s->p, V(n));
        if (!q) { null_results++; continue; }
        /* the common prefix survived the move */
        size_t keep = n < s->n ? n : s->n;
        long off = verify_fast(q, keep - keep % 8, s->seed);
        if (off >= 0 && damaged++ < 5)
          fprintf(stderr, "sizes: realloc %zu -> %zu lost content at offset %ld\n", s->n, n, off);
        s->p = q;
        s->n = n;
        s->seed = rng_next(&rng);
        fill_fast(q, n, s->seed);
        reallocs++;
      } else {
        free(s->p);
        s->p = NULL;
        frees++;
      }
    } else {
      size_t n = weighted_size(&rng);
      unsigned char *p;
      if (action < 2) {
        p = launder(calloc(1, V(n)));
        if (p) {
          for (size_t i = 0; i < n; i++)
            if (p[i]) { if (zero_errors++ < 5) fprintf(stderr, "sizes: calloc(1, %zu)[%zu] != 0\n", n, i); break; }
        }
        callocs++;
      } else {
        p = malloc(V(n));
        mallocs++;
      }
      if (!p) { null_results++; continue; }
      s->p = p;
      s->n = n;
      s->seed = rng_next(&rng);
      fill_fast(p, n, s->seed);
    }
  }
  for (int i = 0; i < SLOTS; i++) {
    if (!table[i].p) continue;
    check_slot(&table[i], "final free");
    free(table[i].p);
  }
  printf("sizes: random run: %ld malloc, %ld calloc, %ld realloc, %ld free\n", mallocs, callocs, reallocs, frees);
  CHECK(null_results == 0, "%ld allocations returned NULL", null_results);
  CHECK(damaged == 0, "%ld blocks had damaged content", damaged);
  CHECK(zero_errors == 0, "%ld calloc blocks were not zeroed", zero_errors);
  CHECK(mallocs + callocs + reallocs + frees > OPS * 9 / 10, "only %ld operations ran",
        mallocs + callocs + reallocs + frees);
}

int main(void) {
  t_init("sizes");
  test_every_size();
  test_random_run();
  return t_finish();
}
