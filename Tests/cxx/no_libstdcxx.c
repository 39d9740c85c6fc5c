/*
 * Tests/cxx/no_libstdcxx.c: the C++ operators in a process without
 * libstdc++ (a C program, preloaded with libswiftmalloc.so; Tests/cxx/run.sh).
 * The library's references to std::get_new_handler and std::__throw_bad_alloc
 * are weak and stay unresolved: no handler can be installed, a nothrow new
 * returns NULL, and a new that cannot be served writes
 * "swiftmalloc: operator new(): out of memory" and aborts.
 */
#define _GNU_SOURCE
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The operators by their Itanium names, weak: the program links without them
 * and finds them in the preloaded library. */
extern void *op_new(size_t) __asm__("_Znwm") __attribute__((weak));
extern void *op_new_nothrow(size_t, const void *) __asm__("_ZnwmRKSt9nothrow_t") __attribute__((weak));
extern void *op_new_array_aligned(size_t, size_t) __asm__("_ZnamSt11align_val_t") __attribute__((weak));
extern void *op_new_aligned_nothrow(size_t, size_t, const void *) __asm__("_ZnwmSt11align_val_tRKSt9nothrow_t")
    __attribute__((weak));
extern void op_delete(void *) __asm__("_ZdlPv") __attribute__((weak));
extern void op_delete_sized(void *, size_t) __asm__("_ZdlPvm") __attribute__((weak));
extern void op_delete_array_aligned(void *, size_t) __asm__("_ZdaPvSt11align_val_t") __attribute__((weak));
extern size_t swm_usable_size(void *) __attribute__((weak));

static int failed, checks;
#define CHECK(cond)                                                    \
  do {                                                                 \
    checks++;                                                          \
    if (!(cond)) {                                                     \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
      failed++;                                                        \
    }                                                                  \
  } while (0)

static volatile size_t huge = SIZE_MAX / 2;

static int find_libstdcxx(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  if (info->dlpi_name && strstr(info->dlpi_name, "libstdc++")) *(int *)data = 1;
  return 0;
}

/* Runs `what` in a child: it must die of SIGABRT with `line` on stderr. */
static void expect_abort(int what, const char *line) {
  int fds[2];
  if (pipe(fds) != 0) { CHECK(0); return; }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    if (what == 0) op_new(huge);
    else op_new_array_aligned(64, 48);
    _exit(0);
  }
  close(fds[1]);
  char out[1024] = {0};
  size_t len = 0;
  ssize_t n;
  while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)n;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK(strstr(out, line) != NULL);
  if (!strstr(out, line)) fprintf(stderr, "  child %d wrote: %s\n", what, out);
}

int main(void) {
  int has_libstdcxx = 0;
  dl_iterate_phdr(find_libstdcxx, &has_libstdcxx);
  CHECK(!has_libstdcxx);
  if (!op_new || !op_delete || !swm_usable_size) {
    fprintf(stderr, "FAIL: the operators are not in the process (run preloaded)\n");
    return 1;
  }
  void *p = op_new(100);
  CHECK(p && ((uintptr_t)p & 15) == 0 && swm_usable_size(p) >= 100);
  op_delete_sized(p, 100);
  p = op_new_array_aligned(1000, 4096);
  CHECK(p && ((uintptr_t)p & 4095) == 0);
  op_delete_array_aligned(p, 4096);
  op_delete(NULL);
  op_delete_array_aligned(NULL, 4096);
  CHECK(op_new_nothrow(huge, NULL) == NULL);
  CHECK(op_new_aligned_nothrow(huge, 64, NULL) == NULL);
  CHECK(op_new_aligned_nothrow(64, 48, NULL) == NULL);
  expect_abort(0, "swiftmalloc: operator new(): out of memory\n");
  expect_abort(1, "swiftmalloc: operator new(): out of memory\n");
  printf("no_libstdcxx: %d checks, %d failed\n", checks, failed);
  return failed ? 1 : 0;
}
