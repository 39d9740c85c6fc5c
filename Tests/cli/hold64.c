/* hold64 N: allocates N blocks of 64 bytes, keeps them, prints "ready PID"
 * and waits until standard input closes (or 60 s), then frees them. For
 * `swiftmalloc top --once --json` (Tests/cli/run.sh). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000;
  void **blocks = malloc((size_t)n * sizeof *blocks);
  for (long i = 0; i < n; i++) {
    blocks[i] = malloc(64);
    if (blocks[i] == NULL) return 3;
    ((char *)blocks[i])[0] = (char)i;
  }
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  struct pollfd p = {.fd = 0, .events = POLLIN};
  char buf[64];
  while (poll(&p, 1, 60000) > 0 && read(0, buf, sizeof buf) > 0) {}
  for (long i = 0; i < n; i++) free(blocks[i]);
  free(blocks);
  return 0;
}
