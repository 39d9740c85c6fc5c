/*
 * Tests/stress/calloc8.c: preloaded in front of the library for stress-ng
 * before 0.15.07 only.
 *
 * stress-ng 0.15.06's malloc stressor calls calloc(n, len / n) and then
 * stores a uintptr_t (8 bytes) at the start of the block, even when
 * n * (len / n) is less than 8 (or 0). The secure library's canary catches
 * that 8-byte write past a smaller request ("free(): heap overflow past the
 * end of ...") and aborts the worker; in both modes a calloc of 0 bytes is a
 * zero-size block, which the write faults on. Upstream fixed it in 0.15.07 (commit
 * 138ae38d7, "stress-malloc: avoid calloc allocation being less than a
 * uintptr_t"). This shim rounds such calloc requests up to 8 bytes, exactly
 * what the fix does, and passes everything else on unchanged to the next
 * calloc (the library's), so the rest of the secure run still checks.
 * Tests/stress/stressng.sh also runs the unpatched stressor once and
 * expects the secure library to catch the bug.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *(*next_calloc)(size_t, size_t);
static int resolving;

static void resolve(void) {
  resolving = 1;
  next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
  resolving = 0;
}

__attribute__((constructor)) static void init(void) { if (!next_calloc) resolve(); }

void *calloc(size_t n, size_t size) {
  size_t total;
  if (!next_calloc) {
    if (resolving) { /* dlsym itself asked for memory: serve it by malloc */
      void *p;
      if (__builtin_mul_overflow(n, size, &total)) return NULL;
      p = malloc(total);
      if (p) memset(p, 0, total);
      return p;
    }
    resolve();
  }
  if (!__builtin_mul_overflow(n, size, &total) && total < sizeof(uintptr_t)) {
    n = 1;
    size = sizeof(uintptr_t);
  }
  return next_calloc(n, size);
}
