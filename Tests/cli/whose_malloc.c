/* whose_malloc: prints the file malloc resolves into (dladdr), so its
 * output differs from one allocator to another (Tests/cli/run.sh: compare
 * must say so). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  Dl_info info;
  void *(*volatile m)(size_t) = malloc;
  if (dladdr((void *)m, &info) == 0 || info.dli_fname == NULL) return 2;
  const char *slash = strrchr(info.dli_fname, '/');
  printf("malloc comes from %s\n", slash ? slash + 1 : info.dli_fname);
  return 0;
}
