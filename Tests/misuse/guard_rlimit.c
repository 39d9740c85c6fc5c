/*
 * Tests/misuse/guard_rlimit.c: secure mode at RLIMIT_DATA must not hand out
 * a guard page as part of a block.
 *
 * Page runs get a PROT_NONE guard page in secure mode; free makes it
 * read-write again with mprotect before the pages go back to the page heap.
 * At the data limit that mprotect fails (making a private page writable is
 * charged to RLIMIT_DATA). The test: two page runs, fill the limit (through
 * malloc, then single mmap pages for the last bit), free both runs, release
 * the fill, allocate a run over the same pages and write all of it. Exit 0
 * and "OK" when every byte could be written; a guard page left inside the
 * block kills it with SIGSEGV.
 *
 * Run preloaded with libswiftmalloc-secure.so (in the default mode there are
 * no guard pages and the test passes trivially).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

int main(void) {
  free(malloc(1));
  struct rlimit rl = {64ul << 20, 64ul << 20};
  if (setrlimit(RLIMIT_DATA, &rl) != 0) { perror("setrlimit"); return 2; }
  char *x = malloc(40000), *a = malloc(64 << 10);
  if (!x || !a) { printf("BAD setup\n"); return 2; }
  memset(x, 1, 40000);
  memset(a, 1, 64 << 10);
  void **fill = NULL, **p;
  static const size_t sizes[] = {1 << 20, 64 << 10, 4096, 48};
  for (int s = 0; s < 4; s++)
    while ((p = malloc(sizes[s])) != NULL) { *p = fill; fill = p; }
  void *pages[4096];
  int npages = 0;
  while (npages < 4096) {
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) break;
    pages[npages++] = m;
  }
  free(x);
  free(a);
  while (fill) { void **next = *fill; free(fill); fill = next; }
  for (int i = 0; i < npages; i++) munmap(pages[i], 4096);
  char *c = malloc(100000);
  if (!c) { printf("BAD malloc(100000) failed after freeing everything\n"); return 1; }
  printf("x=%p a=%p c=%p: writing 100000 bytes\n", (void *)x, (void *)a, (void *)c);
  fflush(stdout);
  memset(c, 2, 100000);
  free(c);
  printf("OK\n");
  return 0;
}
