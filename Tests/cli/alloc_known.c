/* alloc_known MIB: allocates MIB MiB in 256 KiB blocks (mmap blocks, each
 * written), holds them all at once, frees them, and prints "done". The peak
 * in use of its report must be at least MIB MiB and not much more
 * (Tests/cli/run.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  long mib = argc > 1 ? atol(argv[1]) : 64;
  long n = mib * 4;
  char **blocks = malloc((size_t)n * sizeof *blocks);
  for (long i = 0; i < n; i++) {
    blocks[i] = malloc(256 << 10);
    if (blocks[i] == NULL) return 3;
    memset(blocks[i], 1, 256 << 10);
  }
  for (long i = 0; i < n; i++) free(blocks[i]);
  free(blocks);
  printf("done\n");
  return 0;
}
