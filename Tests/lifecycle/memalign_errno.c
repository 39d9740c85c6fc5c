/*
 * memalign_errno.c: posix_memalign failing with ENOMEM also sets errno.
 * Kind: callers (glibc's own tests among them) read errno after a failed
 * posix_memalign. glibc reference: malloc/tst-malloc-thread-fail.c
 * ("if (posix_memalign (...)) { if (errno == ENOMEM) ...").
 * Two failures: an impossible size, and a real one under RLIMIT_AS; the
 * other aligned calls are checked alongside.
 * Right answer (glibc): ENOMEM returned and errno == ENOMEM every time.
 */
#include "lc.h"

#include <stdint.h>
#include <sys/resource.h>

static void try_all(const char *why, size_t size) {
  void *p = (void *)1;
  errno = 0;
  int r = posix_memalign(&p, 64, size);
  CHECK(r == ENOMEM, "%s: posix_memalign returned %d, not ENOMEM", why, r);
  CHECK(errno == ENOMEM, "%s: posix_memalign left errno %d (%s), not ENOMEM", why, errno, strerror(errno));
  errno = 0;
  p = aligned_alloc(4096, size);
  CHECK(p == NULL && errno == ENOMEM, "%s: aligned_alloc gave %p, errno %d", why, p, errno);
  errno = 0;
  p = memalign(256, size);
  CHECK(p == NULL && errno == ENOMEM, "%s: memalign gave %p, errno %d", why, p, errno);
}

int main(void) {
  lc_init("memalign_errno", 20);
  try_all("SIZE_MAX - 8192 bytes", SIZE_MAX - 8192);
  try_all("PTRDIFF_MAX bytes", PTRDIFF_MAX);
  struct rlimit rl = {512u << 20, 512u << 20};   /* 512 MiB of address space */
  REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: %s", strerror(errno));
  try_all("1 GiB under RLIMIT_AS 512 MiB", 1u << 30);
  return lc_finish();
}
