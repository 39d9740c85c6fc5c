/*
 * Tests/misuse/battery.c: runs every case of cases.c preloaded, in a child,
 * and checks how it ended against the table below.
 *
 *   battery <cases-binary> <libswiftmalloc.so> <libswiftmalloc-secure.so> [case ...]
 *
 * Three modes:
 *   default  LD_PRELOAD=libswiftmalloc.so                         (column dflt)
 *   secure   LD_PRELOAD=libswiftmalloc-secure.so                  (column secure)
 *   env      LD_PRELOAD=libswiftmalloc.so SWIFTMALLOC_SECURE=1    (column secure)
 *
 * Expected outcomes:
 *   ABRT  killed by SIGABRT; stderr is exactly one line,
 *         "swiftmalloc: <call>: <problem...> 0x<hex>", whose <problem> contains
 *         the table's text and whose pointer equals the one the case printed
 *         ("PTR 0x..." on stdout) before the bad call
 *   SEGV  killed by SIGSEGV (a guard page), nothing on stderr
 *   OK    exit status 0, "OK" on stdout, nothing on stderr
 *   -     not run in that mode (no check exists there: the case would be
 *         undefined behaviour with nothing to catch it)
 *
 * One "PASS <case> <mode>" or "FAIL <case> <mode>: <why>" line per run.
 * Exit status 1 if anything failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum outcome { SKIP, ABRT, SEGV, OK };

struct expect {
  enum outcome outcome;
  const char *problem; /* ABRT: text the message must contain */
};

struct row {
  const char *name;
  const char *call;
  struct expect dflt;
  struct expect secure;
};

#define A(text) {ABRT, text}
#define S {SEGV, NULL}
#define K {OK, NULL}
#define N {SKIP, NULL}
/* SIGSEGV where the kernel makes guard pages without a mapping
 * (MADV_GUARD_INSTALL, Linux 6.13+; the default mode then guards the end of
 * every mmap block), not run elsewhere: see free_guards() */
#define SG {SEGV, "free guards"}

/* clang-format off */
static const struct row table[] = {
/* case                          call                   default                        secure */
  {"double_free_small",          "free()",              A("double free of"),           A("double free of")},
  {"double_free_later",          "free()",              A("double free of"),           A("double free of")},
  {"double_free_threads",        "free()",              A("double free of"),           A("double free of")},
  {"double_free_thread_exited",  "free()",              A("double free of"),           A("double free of")},
  {"double_free_medium",         "free()",              A("double free of"),           A("double free of")},
  {"double_free_large",          "free()",              A("double free of"),           A("double free of")},
  {"free_interior_small",        "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_interior_medium",       "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_interior_medium_page",  "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_interior_large",        "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_interior_large_page",   "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_unaligned",             "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_unaligned_large",       "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_stack",                 "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_global",                "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"free_garbage",               "free()",              A("invalid pointer"),          A("invalid pointer")},
  {"realloc_freed",              "realloc()",           A("use of freed pointer"),     A("use of freed pointer")},
  {"realloc_freed_large",        "realloc()",           A("use of freed pointer"),     A("use of freed pointer")},
  {"realloc_stack",              "realloc()",           A("invalid pointer"),          A("invalid pointer")},
  {"usable_size_stack",          "malloc_usable_size()",A("invalid pointer"),          A("invalid pointer")},
  {"free_sized_small_wrong",     "free_sized()",        A("size mismatch for"),        A("size mismatch for")},
  {"free_sized_small_smaller",   "free_sized()",        A("size mismatch for"),        A("size mismatch for")},
  {"free_sized_medium_wrong",    "free_sized()",        A("size mismatch for"),        A("size mismatch for")},
  {"free_aligned_sized_wrong",   "free_aligned_sized()",A("alignment mismatch for"),   A("alignment mismatch for")},
  {"free_aligned_sized_npot",    "free_aligned_sized()",A("alignment mismatch for"),   A("alignment mismatch for")},
  /* secure mode only */
  {"overflow_1",                 "free()",              N,                             A("heap overflow")},
  {"overflow_8",                 "free()",              N,                             A("heap overflow")},
  {"overflow_trailer",           "free()",              N,                             A("heap overflow")},
  {"overflow_1_realloc",         "realloc()",           N,                             A("heap overflow")},
  {"overflow_1_usable_size",     "malloc_usable_size()",N,                             A("heap overflow")},
  {"write_after_free",           "free()",              N,                             A("write after free")},
  {"corrupted_link",             "malloc()",            N,                             A("corrupted free list")},
  {"read_after_free",            NULL,                  N,                             K},
  {"read_after_free_all",        NULL,                  N,                             K},
  {"zero_size_write",            NULL,                  S,                             S},
  {"zero_size_read",             NULL,                  S,                             S},
  {"zero_size_free_sized_wrong", "free_sized()",        A("size mismatch for"),        A("size mismatch for")},
  {"zero_size_correct",          NULL,                  K,                             K},
  {"mmap_overflow_guard",        NULL,                  SG,                            S},
  {"mmap_underflow_guard",       NULL,                  N,                             S},
  {"medium_overflow_guard",      NULL,                  N,                             S},
  /* control: correct use never trips a check */
  {"correct_use",                NULL,                  K,                             K},
  {"aligned_zero_unique",        NULL,                  K,                             K},
};
/* clang-format on */

#define TIMEOUT_SECONDS 20

static char *read_all(FILE *f) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  rewind(f);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 2) buf = realloc(buf, cap *= 2);
  }
  buf[len] = 0;
  return buf;
}

static int passed, failed;

static void fail(const char *name, const char *mode, const char *why, const char *out, const char *err) {
  failed++;
  printf("FAIL %-27s %-7s: %s\n", name, mode, why);
  printf("     stdout: %s", out[0] ? out : "(empty)\n");
  if (out[0] && out[strlen(out) - 1] != '\n') printf("\n");
  printf("     stderr: %s", err[0] ? err : "(empty)\n");
  if (err[0] && err[strlen(err) - 1] != '\n') printf("\n");
}

static const char *describe(int status, char *buf, size_t n) {
  if (WIFSIGNALED(status)) snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else if (WIFEXITED(status)) snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
  else snprintf(buf, n, "status 0x%x", status);
  return buf;
}

static void run(const char *cases, const char *lib, int secure_env, const char *mode,
                const struct row *row, struct expect want) {
  FILE *out = tmpfile(), *err = tmpfile();
  if (!out || !err) { perror("tmpfile"); exit(2); }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); exit(2); }
  if (pid == 0) {
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    setenv("LD_PRELOAD", lib, 1);
    if (secure_env) setenv("SWIFTMALLOC_SECURE", "1", 1);
    else unsetenv("SWIFTMALLOC_SECURE");
    execl(cases, cases, row->name, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  int timed_out = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) { perror("waitpid"); exit(2); }
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > TIMEOUT_SECONDS && !timed_out) {
      kill(pid, SIGKILL);
      timed_out = 1;
    }
    usleep(2000);
  }
  char *o = read_all(out), *e = read_all(err);
  fclose(out);
  fclose(err);
  char why[512], st[128];
  describe(status, st, sizeof st);

  if (timed_out) {
    snprintf(why, sizeof why, "timed out after %d s (hang?)", TIMEOUT_SECONDS);
    fail(row->name, mode, why, o, e);
    goto done;
  }
  const char *ptr_line = strstr(o, "PTR 0x");
  unsigned long long want_ptr = ptr_line ? strtoull(ptr_line + 6, NULL, 16) : 0;

  switch (want.outcome) {
  case ABRT: {
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)) {
      snprintf(why, sizeof why, "expected SIGABRT with a message, %s", st);
      fail(row->name, mode, why, o, e);
      goto done;
    }
    if (!ptr_line) { fail(row->name, mode, "the case printed no PTR line", o, e); goto done; }
    char *nl = strchr(e, '\n');
    if (!nl || nl[1] != 0) {
      fail(row->name, mode, "stderr is not exactly one line", o, e);
      goto done;
    }
    char prefix[128], found[128];
    snprintf(prefix, sizeof prefix, "swiftmalloc: %s: ", row->call);
    /* damage found later than it was done names the call it was found
     * during at the end: "swiftmalloc: <problem> 0x<hex> (found during <call>)" */
    snprintf(found, sizeof found, " (found during %s)\n", row->call);
    size_t elen = strlen(e), flen = strlen(found);
    if (elen > flen && strcmp(e + elen - flen, found) == 0 && strncmp(e, "swiftmalloc: ", 13) == 0) {
      e[elen - flen] = '\n';
      e[elen - flen + 1] = 0;
      nl = e + elen - flen;
      snprintf(prefix, sizeof prefix, "swiftmalloc: ");
    }
    if (strncmp(e, prefix, strlen(prefix)) != 0) {
      snprintf(why, sizeof why, "message does not start with \"%s\"", prefix);
      fail(row->name, mode, why, o, e);
      goto done;
    }
    const char *problem = e + strlen(prefix);
    const char *hex = strstr(problem, " 0x");
    const char *last = NULL;
    while (hex) { last = hex; hex = strstr(hex + 1, " 0x"); }
    if (!last) { fail(row->name, mode, "message has no pointer", o, e); goto done; }
    char *end = NULL;
    unsigned long long got = strtoull(last + 3, &end, 16);
    if (end != nl) { fail(row->name, mode, "message does not end with the pointer", o, e); goto done; }
    if (got != want_ptr) {
      snprintf(why, sizeof why, "message names 0x%llx, the case misused 0x%llx", got, want_ptr);
      fail(row->name, mode, why, o, e);
      goto done;
    }
    size_t plen = (size_t)(last - problem);
    char ptext[256];
    snprintf(ptext, sizeof ptext, "%.*s", (int)plen, problem);
    if (!strstr(ptext, want.problem)) {
      snprintf(why, sizeof why, "problem is \"%s\", expected it to contain \"%s\"", ptext, want.problem);
      fail(row->name, mode, why, o, e);
      goto done;
    }
    break;
  }
  case SEGV:
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)) {
      snprintf(why, sizeof why, "expected SIGSEGV (guard page), %s", st);
      fail(row->name, mode, why, o, e);
      goto done;
    }
    if (!ptr_line) { fail(row->name, mode, "the case printed no PTR line", o, e); goto done; }
    if (e[0]) { fail(row->name, mode, "unexpected output on stderr", o, e); goto done; }
    break;
  case OK:
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || !strstr(o, "OK\n")) {
      snprintf(why, sizeof why, "expected a clean exit with OK, %s", st);
      fail(row->name, mode, why, o, e);
      goto done;
    }
    if (e[0]) { fail(row->name, mode, "unexpected output on stderr", o, e); goto done; }
    break;
  case SKIP:
    break;
  }
  passed++;
  if (want.outcome == ABRT) {
    char *nl = strchr(e, '\n');
    printf("PASS %-27s %-7s SIGABRT  %.*s\n", row->name, mode, (int)(nl - e), e);
  } else {
    printf("PASS %-27s %-7s %s\n", row->name, mode, want.outcome == SEGV ? "SIGSEGV" : "exit 0");
  }
done:
  free(o);
  free(e);
}

static int selected(const char *name, int argc, char **argv) {
  if (argc <= 4) return 1;
  for (int i = 4; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

/* Whether this kernel has MADV_GUARD_INSTALL (102): probed on a page of our own. */
static int free_guards(void) {
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  int ok = madvise(p, 4096, 102) == 0;
  munmap(p, 4096);
  return ok;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s <cases> <libswiftmalloc.so> <libswiftmalloc-secure.so> [case ...]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    const struct row *r = &table[i];
    if (!selected(r->name, argc, argv)) continue;
    struct expect dflt = r->dflt;
    if (dflt.outcome == SEGV && dflt.problem && !free_guards()) {
      printf("SKIP %s default: no MADV_GUARD_INSTALL on this kernel (the default mode adds no guard then)\n", r->name);
      dflt.outcome = SKIP;
    }
    if (dflt.outcome != SKIP) run(argv[1], argv[2], 0, "default", r, dflt);
    if (r->secure.outcome != SKIP) {
      run(argv[1], argv[3], 0, "secure", r, r->secure);
      run(argv[1], argv[2], 1, "env", r, r->secure);
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
