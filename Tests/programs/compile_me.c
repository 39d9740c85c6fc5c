/* Compiled by gcc under the preloaded allocator (Tests/programs/run.sh), then
 * run; its output is compared with the expected text. Enough code that cc1
 * does real work: structs, recursion, a hash table, qsort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry { char *key; unsigned value; struct entry *next; };

static unsigned hash(const char *s) {
  unsigned h = 2166136261u;
  while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
  return h;
}

static int cmp(const void *a, const void *b) {
  const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
  return strcmp(x->key, y->key);
}

static unsigned long fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(void) {
  enum { BUCKETS = 1024, N = 20000 };
  struct entry **table = calloc(BUCKETS, sizeof *table);
  struct entry **all = malloc(N * sizeof *all);
  char buf[32];
  for (unsigned i = 0; i < N; i++) {
    snprintf(buf, sizeof buf, "key-%u", (i * 7919u) % N);
    struct entry *e = malloc(sizeof *e);
    e->key = strdup(buf);
    e->value = i;
    unsigned b = hash(buf) % BUCKETS;
    e->next = table[b];
    table[b] = e;
    all[i] = e;
  }
  qsort(all, N, sizeof *all, cmp);
  unsigned long sum = 0;
  for (unsigned i = 0; i < N; i++) sum += (unsigned long)all[i]->value * (i + 1);
  printf("first %s last %s sum %lu fib %lu\n", all[0]->key, all[N - 1]->key, sum, fib(25));
  for (unsigned i = 0; i < N; i++) { free(all[i]->key); free(all[i]); }
  free(all);
  free(table);
  return 0;
}
