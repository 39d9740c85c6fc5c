/*
 * mallopt_unknown.c: mallopt with a parameter it does not know returns 1.
 * Kind: compatibility of return values with glibc 2.36, whose mallopt
 * (malloc/malloc.c, __libc_mallopt) starts from res = 1 and has no default
 * case: programs that set glibc-only or newer parameters see success.
 * Right answer (glibc 2.36): 1 for every unknown parameter, and the
 * allocator keeps working.
 */
#include "lc.h"

int main(void) {
  lc_init("mallopt_unknown", 20);
  static const int unknown[] = {12345, -12345, 1000, -100};
  for (unsigned i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    int r = mallopt(unknown[i], 1);
    CHECK(r == 1, "mallopt(%d, 1) returned %d, glibc 2.36 returns 1", unknown[i], r);
  }
  void *p = malloc(1000);
  CHECK(p != NULL, "malloc after mallopt");
  free(p);
  return lc_finish();
}
