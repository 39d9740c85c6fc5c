/*
 * Tests/misuse/rlimit.c: the allocator under an address-space or data limit.
 *
 *   rlimit as|data <test>     (run preloaded with libswiftmalloc*.so)
 *
 * <test>: small, small_var, calloc, medium, large, mixed (one kind of
 * request, below), large_after_small (64 x 1 MiB after small blocks filled
 * the limit and were freed), threads.
 *
 * The limit is 256 MiB (RLIMIT_AS or RLIMIT_DATA, soft and hard). For each
 * kind of request (small 48 B, small sizes 16..1024 B, calloc'd small, medium
 * 64 KiB, large 1 MiB, a mix of all) the program allocates until the
 * allocator says no and checks:
 *   - every failure is NULL with errno ENOMEM (and nothing aborts or crashes);
 *   - while exhausted, realloc of a live block to something bigger fails with
 *     NULL + ENOMEM and leaves the block intact, calloc fails likewise;
 *   - every block kept its content (filled with a pattern from its address);
 *   - after everything is freed, a small, a medium and a large allocation
 *     succeed, and a second run to exhaustion gets at least half as many
 *     bytes as the first (freed memory is reusable).
 * "threads": 4 threads allocate to the limit (and free, 3 rounds) while
 * 4 others allocate, check and free at random; every block is checked.
 *
 * Blocks are chained through their first word, so no other memory is needed
 * to track them. Output: one PASS/FAIL line per check; exit 1 on failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define LIMIT (256ul << 20)
#define MAX_BLOCKS (64ul << 20) /* stop if the limit never bites */

static atomic_int failures;
static char outbuf[1 << 16];
static const char *limit_name;

#define CHECK(cond, ...)                              \
  do {                                                \
    if (!(cond)) {                                    \
      printf("FAIL rlimit %s: ", limit_name);         \
      printf(__VA_ARGS__);                            \
      printf("\n");                                   \
      atomic_fetch_add(&failures, 1);                 \
    }                                                 \
  } while (0)

struct block {
  struct block *next;
  size_t size;
  /* pattern follows */
};

static inline uint64_t word_at(const void *base, size_t i) {
  return ((uint64_t)(uintptr_t)base * 0x9E3779B97F4A7C15ull) ^ (i * 0xD1B54A32D192ED03ull) ^ 0x5bd1e995;
}

static void fill(struct block *b, size_t size) {
  b->size = size;
  uint64_t *w = (uint64_t *)(b + 1);
  size_t words = (size - sizeof *b) / 8;
  for (size_t i = 0; i < words; i++) w[i] = word_at(b, i);
  unsigned char *tail = (unsigned char *)(w + words);
  for (size_t i = 0; i < (size - sizeof *b) % 8; i++) tail[i] = (unsigned char)(word_at(b, words + i) >> 8);
}

static int intact(const struct block *b, size_t size) {
  if (b->size != size) return 0;
  const uint64_t *w = (const uint64_t *)(b + 1);
  size_t words = (size - sizeof *b) / 8;
  for (size_t i = 0; i < words; i++)
    if (w[i] != word_at(b, i)) return 0;
  const unsigned char *tail = (const unsigned char *)(w + words);
  for (size_t i = 0; i < (size - sizeof *b) % 8; i++)
    if (tail[i] != (unsigned char)(word_at(b, words + i) >> 8)) return 0;
  return 1;
}

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

enum kind { SMALL, SMALL_VAR, SMALL_CALLOC, MEDIUM, LARGE, MIXED, NKINDS };
static const char *kind_name[] = {"small 48 B", "small 16..1024 B", "calloc small", "medium 64 KiB",
                                  "large 1 MiB", "mixed"};

static size_t pick(enum kind k, uint64_t *rng) {
  switch (k) {
  case SMALL: return 48;
  case SMALL_VAR:
  case SMALL_CALLOC: return 16 + rng_next(rng) % 1009;
  case MEDIUM: return 64 << 10;
  case LARGE: return 1 << 20;
  default: {
    uint64_t r = rng_next(rng) % 100;
    if (r < 80) return 16 + rng_next(rng) % 2000;
    if (r < 95) return 4096 + rng_next(rng) % (120 << 10);
    return (128 << 10) + rng_next(rng) % (2 << 20);
  }
  }
}

struct run {
  struct block *head;
  size_t count, bytes;
  int bad_errno;
  int last_errno;
};

/* Allocates until NULL. Returns with the chain in r. */
static void exhaust(enum kind k, uint64_t *rng, struct run *r) {
  memset(r, 0, sizeof *r);
  while (r->count < MAX_BLOCKS) {
    size_t n = pick(k, rng);
    errno = 0;
    struct block *b;
    if (k == SMALL_CALLOC) {
      b = calloc(1, n);
      if (b) {
        const unsigned char *z = (const unsigned char *)b;
        for (size_t i = 0; i < n; i++)
          if (z[i]) { CHECK(0, "calloc(1, %zu) memory is not zero at %zu", n, i); break; }
      }
    } else {
      b = malloc(n);
    }
    if (!b) {
      r->last_errno = errno;
      if (errno != ENOMEM) r->bad_errno++;
      /* for the fixed sizes, this is the end; for random sizes, the end is
       * a run of failures (a smaller request may still fit) */
      if (k == SMALL || k == MEDIUM || k == LARGE) break;
      int more = 0;
      for (int i = 0; i < 64; i++) {
        size_t m = pick(k, rng);
        errno = 0;
        struct block *c = k == SMALL_CALLOC ? calloc(1, m) : malloc(m);
        if (c) { fill(c, m); c->next = r->head; r->head = c; r->count++; r->bytes += m; more = 1; break; }
        if (errno != ENOMEM) r->bad_errno++;
      }
      if (!more) break;
      continue;
    }
    fill(b, n);
    b->next = r->head;
    r->head = b;
    r->count++;
    r->bytes += n;
  }
}

/* Checks every block and frees the chain; returns the number of bad blocks. */
static size_t check_and_free(struct block *b) {
  size_t bad = 0;
  while (b) {
    struct block *next = b->next;
    if (!intact(b, b->size)) bad++;
    free(b);
    b = next;
  }
  return bad;
}

/* One kind of request to the limit and back; every kind runs in a fresh
 * process (run.sh), so one failure does not cascade into the next kind. */
static void single_kind(enum kind k) {
  uint64_t rng = 0x1234567 + (uint64_t)k;
  {
    struct run r;
    exhaust(k, &rng, &r);
    int ok = 1;
    if (r.count >= MAX_BLOCKS) { CHECK(0, "%s: the limit never bit", kind_name[k]); ok = 0; }
    if (r.count == 0) { CHECK(0, "%s: no allocation succeeded", kind_name[k]); ok = 0; }
    if (r.bad_errno) { CHECK(0, "%s: %d failures without ENOMEM (last errno %d)", kind_name[k], r.bad_errno, r.last_errno); ok = 0; }

    /* while exhausted: repeated failures stay clean */
    int extra_bad = 0;
    for (int i = 0; i < 1000; i++) {
      errno = 0;
      void *p = malloc(k == LARGE ? (4 << 20) : k == MEDIUM ? (256 << 10) : (64 << 20));
      if (p) free(p);
      else if (errno != ENOMEM) extra_bad++;
    }
    if (extra_bad) { CHECK(0, "%s: %d later failures without ENOMEM", kind_name[k], extra_bad); ok = 0; }
    if (r.head) {
      /* realloc growth that cannot be served: NULL, ENOMEM, block intact */
      struct block *b = r.head;
      errno = 0;
      void *q = realloc(b, 512ul << 20);
      if (q) {
        CHECK(0, "%s: realloc to 512 MiB succeeded under a 256 MiB limit", kind_name[k]);
        r.head = q;
        fill(q, ((struct block *)q)->size); /* the pattern depends on the address */
        ok = 0;
      }
      else if (errno != ENOMEM) { CHECK(0, "%s: failed realloc errno %d, not ENOMEM", kind_name[k], errno); ok = 0; }
      else if (!intact(b, b->size)) { CHECK(0, "%s: failed realloc damaged the block", kind_name[k]); ok = 0; }
      errno = 0;
      void *c = calloc(1, 512ul << 20);
      if (c) { CHECK(0, "%s: calloc of 512 MiB succeeded under a 256 MiB limit", kind_name[k]); free(c); ok = 0; }
      else if (errno != ENOMEM) { CHECK(0, "%s: failed calloc errno %d, not ENOMEM", kind_name[k], errno); ok = 0; }
    }
    size_t bad = check_and_free(r.head);
    if (bad) { CHECK(0, "%s: %zu of %zu blocks lost their content", kind_name[k], bad, r.count); ok = 0; }

    /* usable again */
    void *s = malloc(48), *m = malloc(64 << 10), *l = malloc(1 << 20);
    if (!s || !m || !l) {
      CHECK(0, "%s: after freeing everything: malloc(48)=%p malloc(64K)=%p malloc(1M)=%p", kind_name[k], s, m, l);
      ok = 0;
    }
    free(s);
    free(m);
    free(l);
    struct run again;
    exhaust(k, &rng, &again);
    size_t bad2 = check_and_free(again.head);
    if (bad2) { CHECK(0, "%s: second run: %zu blocks lost their content", kind_name[k], bad2); ok = 0; }
    if (again.bytes < r.bytes / 2) {
      CHECK(0, "%s: second run got %zu bytes, first %zu: freed memory not reusable", kind_name[k], again.bytes, r.bytes);
      ok = 0;
    }
    if (ok)
      printf("PASS rlimit %s %-18s %9zu blocks %4zu MiB, ENOMEM, contents ok, usable again (%4zu MiB)\n",
             limit_name, kind_name[k], r.count, r.bytes >> 20, again.bytes >> 20);
  }
}

/* Large requests after small-block exhaustion: the freed small blocks must
 * not keep the address space from large blocks. */
static void large_after_small(void) {
  uint64_t rng = 0x7654321;
  {
    struct run r;
    exhaust(SMALL, &rng, &r);
    check_and_free(r.head);
    int got = 0;
    void *ls[64];
    for (int i = 0; i < 64; i++) {
      ls[i] = malloc(1 << 20);
      if (ls[i]) got++;
    }
    for (int i = 0; i < 64; i++) free(ls[i]);
    if (got == 64) printf("PASS rlimit %s large blocks after small exhaustion (64 x 1 MiB)\n", limit_name);
    else CHECK(0, "after small-block exhaustion and free: only %d of 64 malloc(1 MiB) succeeded", got);
  }
}

/* MARK: threads ------------------------------------------------------------ */

static pthread_barrier_t start;
static atomic_int hogs_running;
static atomic_ulong hog_blocks, churn_ops, churn_nulls, content_errors, errno_errors;

static void *hog(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  uint64_t rng = 0x9e3779b9ull * (id + 1);
  enum kind kinds[] = {SMALL_VAR, MEDIUM, LARGE, MIXED};
  pthread_barrier_wait(&start);
  for (int round = 0; round < 3; round++) {
    struct run r;
    exhaust(kinds[id % 4], &rng, &r);
    atomic_fetch_add(&hog_blocks, r.count);
    if (r.bad_errno) atomic_fetch_add(&errno_errors, (unsigned long)r.bad_errno);
    usleep(20000); /* stay at the limit for a while: the churn threads hit it too */
    atomic_fetch_add(&content_errors, check_and_free(r.head));
  }
  atomic_fetch_sub(&hogs_running, 1);
  return NULL;
}

static void *churn(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  uint64_t rng = 0x51ed27ull * (id + 7);
  struct block *slot[64] = {0};
  pthread_barrier_wait(&start);
  while (atomic_load(&hogs_running) > 0) {
    for (int i = 0; i < 1000; i++) {
      unsigned s = (unsigned)(rng_next(&rng) % 64);
      if (slot[s]) {
        if (!intact(slot[s], slot[s]->size)) atomic_fetch_add(&content_errors, 1);
        if (rng_next(&rng) & 1) {
          size_t n = pick(MIXED, &rng);
          errno = 0;
          struct block *q = realloc(slot[s], n);
          if (q) {
            fill(q, n);
            slot[s] = q;
          } else {
            if (errno != ENOMEM) atomic_fetch_add(&errno_errors, 1);
            atomic_fetch_add(&churn_nulls, 1);
            if (!intact(slot[s], slot[s]->size)) atomic_fetch_add(&content_errors, 1);
          }
        } else {
          free(slot[s]);
          slot[s] = NULL;
        }
      } else {
        size_t n = pick(MIXED, &rng);
        errno = 0;
        struct block *b = malloc(n);
        if (!b) {
          if (errno != ENOMEM) atomic_fetch_add(&errno_errors, 1);
          atomic_fetch_add(&churn_nulls, 1);
          continue;
        }
        fill(b, n);
        slot[s] = b;
      }
      atomic_fetch_add(&churn_ops, 1);
    }
  }
  for (int s = 0; s < 64; s++) {
    if (slot[s] && !intact(slot[s], slot[s]->size)) atomic_fetch_add(&content_errors, 1);
    free(slot[s]);
  }
  return NULL;
}

static void multi_threaded(void) {
  pthread_t t[8];
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 << 10);
  pthread_barrier_init(&start, NULL, 9);
  atomic_store(&hogs_running, 4);
  for (uintptr_t i = 0; i < 4; i++)
    if (pthread_create(&t[i], &attr, hog, (void *)i)) { CHECK(0, "pthread_create failed"); exit(1); }
  for (uintptr_t i = 0; i < 4; i++)
    if (pthread_create(&t[4 + i], &attr, churn, (void *)i)) { CHECK(0, "pthread_create failed"); exit(1); }
  pthread_barrier_wait(&start);
  for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  unsigned long ce = atomic_load(&content_errors), ee = atomic_load(&errno_errors);
  CHECK(ce == 0, "threads: %lu blocks lost their content", ce);
  CHECK(ee == 0, "threads: %lu failures without ENOMEM", ee);
  CHECK(atomic_load(&churn_nulls) > 0 || atomic_load(&hog_blocks) > 0, "threads: nothing happened");
  void *s = malloc(48), *m = malloc(64 << 10), *l = malloc(1 << 20);
  CHECK(s && m && l, "threads: after freeing everything: malloc(48)=%p malloc(64K)=%p malloc(1M)=%p", s, m, l);
  free(s);
  free(m);
  free(l);
  if (ce == 0 && ee == 0 && s && m && l)
    printf("PASS rlimit %s threads: 4 hogs %lu blocks, 4 churners %lu ops (%lu NULL+ENOMEM), contents ok, usable again\n",
           limit_name, atomic_load(&hog_blocks), atomic_load(&churn_ops), atomic_load(&churn_nulls));
}

static const char *test_names[] = {"small", "small_var", "calloc", "medium", "large", "mixed"};

int main(int argc, char **argv) {
  setvbuf(stdout, outbuf, _IOLBF, sizeof outbuf);
  int which = -1;
  if (argc == 3) {
    for (int i = 0; i < NKINDS; i++)
      if (strcmp(argv[2], test_names[i]) == 0) which = i;
    if (strcmp(argv[2], "large_after_small") == 0) which = NKINDS;
    if (strcmp(argv[2], "threads") == 0) which = NKINDS + 1;
  }
  if (argc != 3 || which < 0 || (strcmp(argv[1], "as") && strcmp(argv[1], "data"))) {
    fprintf(stderr, "usage: %s as|data small|small_var|calloc|medium|large|mixed|large_after_small|threads\n", argv[0]);
    return 2;
  }
  limit_name = argv[1][0] == 'a' ? "AS" : "DATA";
  /* warm up the allocator (and stdio) before the limit */
  free(malloc(1));
  struct rlimit rl = {LIMIT, LIMIT};
  if (setrlimit(argv[1][0] == 'a' ? RLIMIT_AS : RLIMIT_DATA, &rl) != 0) {
    perror("setrlimit");
    return 2;
  }
  if (which == NKINDS + 1) multi_threaded();
  else if (which == NKINDS) large_after_small();
  else single_kind((enum kind)which);
  return atomic_load(&failures) ? 1 : 0;
}
