/*
 * lib_hooks.c: helper library for hook_reentry.c, shaped like a memory
 * profiler (memray, heaptrack): it defines mmap, munmap, madvise, mprotect,
 * sbrk and brk, forwards each to the next definition (dlsym(RTLD_NEXT)) and,
 * once armed, records the call in a malloc'd node (freeing the thread's
 * previous node). A thread-local flag keeps the hook from recursing into
 * itself, as profilers do; it does not stop the hook's malloc from reaching
 * the allocator while the allocator is inside the hooked call.
 * Armed from its constructor when the program's first argument is "cold"
 * (glibc passes argc/argv to ELF constructors), else by main via lc_hooks_arm.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>

static volatile int armed;
static __thread int in_hook __attribute__((tls_model("initial-exec")));
static __thread void *last_node __attribute__((tls_model("initial-exec")));
long lc_hook_calls[6];   /* mmap munmap madvise mprotect sbrk brk */

static void record(int which, void *addr, size_t len) {
  __atomic_fetch_add(&lc_hook_calls[which], 1, __ATOMIC_RELAXED);
  if (!armed || in_hook) return;
  in_hook = 1;
  struct node { int which; void *addr; size_t len; } *n = malloc(sizeof *n);
  if (n) { n->which = which; n->addr = addr; n->len = len; }
  free(last_node);
  last_node = n;
  in_hook = 0;
}

#define NEXT(name) \
  static __typeof__(name) *real_##name; \
  if (!real_##name) { in_hook++; real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); in_hook--; }

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  NEXT(mmap);
  void *r = real_mmap(addr, len, prot, flags, fd, off);
  record(0, r, len);
  return r;
}
int munmap(void *addr, size_t len) { NEXT(munmap); int r = real_munmap(addr, len); record(1, addr, len); return r; }
int madvise(void *addr, size_t len, int advice) {
  NEXT(madvise);
  int r = real_madvise(addr, len, advice);
  record(2, addr, len);
  return r;
}
int mprotect(void *addr, size_t len, int prot) {
  NEXT(mprotect);
  int r = real_mprotect(addr, len, prot);
  record(3, addr, len);
  return r;
}
void *sbrk(intptr_t delta) { NEXT(sbrk); void *r = real_sbrk(delta); record(4, r, (size_t)delta); return r; }
int brk(void *addr) { NEXT(brk); int r = real_brk(addr); record(5, addr, 0); return r; }

void lc_hooks_arm(void) { armed = 1; }

__attribute__((constructor)) static void init(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "cold") == 0) armed = 1;
}
