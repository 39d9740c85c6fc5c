/*
 * oldkernel_run.c: runs a program as on a kernel older than 6.13, which has
 * no MADV_GUARD_INSTALL (102) / MADV_GUARD_REMOVE (103): a seccomp filter
 * makes madvise with those advice values fail with EINVAL, as such kernels
 * do. Everything else is allowed.
 *   oldkernel_run prog [args...]
 * The program's stderr is relayed and its lines counted: more than one line
 * (the allocator may warn once) makes the run fail. Exit status: the
 * program's, 1 for too much stderr, 128+N for a death by signal N.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void no_guard_madvise(void) {
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 102, 0, 2),      /* advice 102 or 103 */
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 103, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("oldkernel_run: seccomp");
    _exit(2);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: oldkernel_run prog [args...]\n"); return 2; }
  int fds[2];
  if (pipe(fds) != 0) { perror("pipe"); return 2; }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    no_guard_madvise();
    execvp(argv[1], argv + 1);
    perror("oldkernel_run: exec");
    _exit(2);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  int lines = 0, partial = 0;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) {
    if (write(2, buf, (size_t)n) < 0) {}
    for (ssize_t i = 0; i < n; i++) { partial = buf[i] != '\n'; lines += buf[i] == '\n'; }
  }
  lines += partial;
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  printf("oldkernel_run: %d line(s) on stderr\n", lines);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  if (WEXITSTATUS(st) != 0) return WEXITSTATUS(st);
  if (lines > 1) { printf("FAIL: %d lines on stderr, at most one warning allowed\n", lines); return 1; }
  return 0;
}
