/*
 * Tests/install/prog.c: a program built with nothing but pkg-config's flags
 * (Tests/install/run.sh), which checks that its malloc is swiftmalloc's.
 *
 * Built without -DUSE_SWM it calls only names the C library also defines
 * (malloc, free, mallinfo2, malloc_info), like most programs: with the
 * linker's --as-needed, plain -lswiftmalloc is dropped from such a program.
 * With -DUSE_SWM it also calls swm_version() and swm_usable_size().
 * -DSTATIC_BUILD: linked with -static (dladdr cannot name a library then).
 *
 * Prints "VERSION <v>" (the version the library reports) and "OK", or FAIL
 * lines and exits 1.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <swiftmalloc.h>

static int failures;
#define CHECK(cond, ...) \
  do { if (!(cond)) { printf("FAIL "); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

/* The version in malloc_info's root element: <malloc version="1" swiftmalloc="X">. */
static void info_version(char *out, size_t cap) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  out[0] = 0;
  if (!f) return;
  int r = malloc_info(0, f);
  fclose(f);
  const char *at = r == 0 && text ? strstr(text, "swiftmalloc=\"") : NULL;
  if (at) {
    at += strlen("swiftmalloc=\"");
    size_t n = strcspn(at, "\"");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), at);
  }
  free(text);
}

int main(void) {
  void *(*volatile malloc_fn)(size_t) = malloc;
#ifndef STATIC_BUILD
  /* Where malloc resolves: the library the dynamic linker bound it to. */
  Dl_info info;
  int found = dladdr((void *)malloc_fn, &info);
  CHECK(found && info.dli_fname && strstr(info.dli_fname, "libswiftmalloc"),
        "malloc resolves into %s, not libswiftmalloc", found && info.dli_fname ? info.dli_fname : "(unknown)");
  if (found) printf("MALLOC %s\n", info.dli_fname);
#endif
  /* A 4 MiB block is an mmap block: mallinfo2 must count it. */
  struct mallinfo2 before = mallinfo2();
  char *big = malloc_fn(4 << 20);
  CHECK(big != NULL, "malloc(4 MiB) failed");
  if (big) memset(big, 1, 4 << 20);
  struct mallinfo2 during = mallinfo2();
  CHECK(during.hblkhd >= before.hblkhd + (4 << 20), "mallinfo2 does not count the 4 MiB block (hblkhd %zu -> %zu)",
        before.hblkhd, during.hblkhd);
  free(big);

  char version[64];
  info_version(version, sizeof version);
  CHECK(strcmp(version, SWIFTMALLOC_VERSION) == 0, "malloc_info reports version '%s', the header says %s", version,
        SWIFTMALLOC_VERSION);
#ifdef USE_SWM
  CHECK(strcmp(swm_version(), SWIFTMALLOC_VERSION) == 0, "swm_version() is %s, the header says %s", swm_version(),
        SWIFTMALLOC_VERSION);
  snprintf(version, sizeof version, "%s", swm_version());
  char *p = malloc(1000);  /* swm_usable_size aborts unless swiftmalloc made p */
  CHECK(p && swm_usable_size(p) >= 1000, "swm_usable_size(malloc(1000)) < 1000");
  free(p);
#endif
  printf("VERSION %s\n", version);
  if (failures) return 1;
  printf("OK\n");
  return 0;
}
