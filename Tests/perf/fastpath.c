/*
 * fastpath.c: the workload whose instructions Tests/perf/run.sh counts.
 * 16 live blocks of 16..136 bytes, freed and allocated again 200,000 times
 * by one thread: after the first round every call is a fast-path hit (the
 * thread cache's bins never run dry nor overflow), so callgrind's
 * instructions per call are the fast paths' lengths.
 */
#include <stdio.h>
#include <stdlib.h>

enum { LIVE = 16, ROUNDS = 200000 };

int main(void) {
  void *v[LIVE];
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < LIVE; i++) v[i] = malloc(16 + (size_t)i * 8);
    for (int i = 0; i < LIVE; i++) free(v[i]);
  }
  printf("%d calls each\n", LIVE * ROUNDS);
  return 0;
}
