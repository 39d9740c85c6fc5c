/*
 * misuse.c: heap misuse is caught, reported and ends the process.
 *
 * Each case runs in a forked child. The parent checks that the child died of
 * SIGABRT and (swiftmalloc) that its stderr holds exactly one line, starting
 * with "swiftmalloc: ", naming the call ("free()", "realloc()", ...) and the
 * pointer ("0x<hex>" of the pointer passed).
 *
 * With plain glibc the same cases are undefined behaviour that glibc happens
 * to catch; there the test only requires SIGABRT for the cases glibc is known
 * to detect, and the message format is not checked.
 */
#include "common.h"

struct misuse {
  const char *name;
  const char *call;       /* the call the message must name */
  int glibc_detects;      /* glibc 2.36 aborts on this too */
  void (*run)(void);
};

/* The pointer handed to the allocator, published for the message check. The
 * child writes it into a shared page before the bad call. */
static volatile uintptr_t *bad_pointer;

static void *publish(void *p) {
  *bad_pointer = (uintptr_t)p;
  return p;
}

static void free_stack(void) {
  char buf[64];
  memset(buf, 0, sizeof buf);
  free(publish(launder(buf + 16)));
}

static void *prepared(size_t n) {
  char *p = malloc(V(n));
  if (!p) _exit(90);
  memset(p, 0, n);
  return p;
}

static void free_interior_small(void) {
  char *p = prepared(64);
  free(publish(launder(p + 8)));
}

static void free_interior_small_16(void) {
  char *p = prepared(64);
  free(publish(launder(p + 16)));
}

static void free_interior_medium(void) {
  char *p = prepared(64 << 10);
  free(publish(launder(p + 8)));
}

static void free_interior_medium_page(void) {
  char *p = prepared(64 << 10);
  free(publish(launder(p + 8192)));
}

static void free_interior_large(void) {
  char *p = prepared(1 << 20);
  free(publish(launder(p + 8)));
}

static void free_interior_large_page(void) {
  char *p = prepared(1 << 20);
  free(publish(launder(p + 8192)));
}

static void realloc_stack(void) {
  char buf[64];
  memset(buf, 0, sizeof buf);
  void *q = realloc(publish(launder(buf + 16)), V(100));
  sink(q);
}

static void double_free_small(void) {
  char *p = prepared(40);
  char *again = launder(p); /* the compiler must not know it is p */
  free(p);
  free(publish(again));
}

static void double_free_medium(void) {
  char *p = prepared(64 << 10);
  char *again = launder(p); /* the compiler must not know it is p */
  free(p);
  free(publish(again));
}

static void double_free_medium_kept(void) {
  /* a live neighbour on each side: the freed run cannot be trimmed away */
  char *a = prepared(64 << 10);
  char *p = prepared(64 << 10);
  char *b = prepared(64 << 10);
  sink(a);
  sink(b);
  char *again = launder(p); /* the compiler must not know it is p */
  free(p);
  free(publish(again));
}

static void double_free_large(void) {
  char *p = prepared(1 << 20);
  char *again = launder(p); /* the compiler must not know it is p */
  free(p);
  free(publish(again));
}

static void realloc_freed_small(void) {
  char *p = prepared(40);
  char *again = launder(p);
  free(p);
  void *q = realloc(publish(again), V(80));
  sink(q);
}

static void usable_size_interior(void) {
  char *p = prepared(64);
  size_t n = malloc_usable_size(publish(launder(p + 8)));
  sink((void *)n);
}

static void correct_use(void) {
  char *p = prepared(64);
  free(p);
  p = prepared(64 << 10);
  free(p);
  p = prepared(1 << 20);
  free(p);
}

static const struct misuse cases[] = {
  {"free of a stack pointer", "free()", 1, free_stack},
  {"free of p+8 inside a small block", "free()", 1, free_interior_small},
  {"free of p+8 inside a medium (64 KiB) block", "free()", 1, free_interior_medium},
  {"free of p+8 inside a large (1 MiB) block", "free()", 1, free_interior_large},
  {"realloc of a stack pointer", "realloc()", 1, realloc_stack},
  {"double free of a small block", "free()", 1, double_free_small},
  {"double free of a medium (64 KiB) block", "free()", 1, double_free_medium},
  /* swiftmalloc only: glibc does not reliably catch these */
  {"free of p+16 inside a small block", "free()", 0, free_interior_small_16},
  {"free of p+8192 inside a medium block", "free()", 0, free_interior_medium_page},
  {"free of p+8192 inside a large block", "free()", 0, free_interior_large_page},
  {"double free of a medium block between live ones", "free()", 0, double_free_medium_kept},
  {"double free of a large (1 MiB) block", "free()", 0, double_free_large},
  {"realloc of a freed small block", "realloc()", 0, realloc_freed_small},
  {"malloc_usable_size of p+8 inside a small block", "malloc_usable_size()", 0, usable_size_interior},
};

static void run_case(void *arg) {
  const struct misuse *m = arg;
  m->run();
  /* reaching here means the misuse went unnoticed */
  _exit(0);
}

int main(void) {
  t_init("misuse");
  bad_pointer = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(bad_pointer != MAP_FAILED, "mmap");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct misuse *m = &cases[i];
    if (!ours && !m->glibc_detects) continue;
    char err[4096];
    *bad_pointer = 0;
    int st = run_in_child(run_case, (void *)m, err, sizeof err, 20);
    char desc[64];
    describe_status(st, desc, sizeof desc);
    int aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    CHECK(aborted, "%s: child ended with %s, want SIGABRT; stderr: %s", m->name, desc, err);
    if (!ours) continue;
    CHECK(text_lines(err) == 1, "%s: want one line on stderr, got %d: %s", m->name, text_lines(err), err);
    CHECK(strncmp(err, "swiftmalloc: ", 13) == 0, "%s: message does not start with 'swiftmalloc: ': %s", m->name,
          err);
    CHECK(strstr(err, m->call) != NULL, "%s: message does not name %s: %s", m->name, m->call, err);
    char hex[40];
    snprintf(hex, sizeof hex, "0x%lx", (unsigned long)*bad_pointer);
    CHECK(*bad_pointer != 0 && strstr(err, hex) != NULL, "%s: message does not show the pointer %s: %s", m->name,
          hex, err);
    printf("misuse: %-50s -> %s", m->name, err);
  }
  /* the harness itself: a correct program is not reported as an abort */
  static const struct misuse fine = {"correct use", "", 1, correct_use};
  char err[256];
  int st = run_in_child(run_case, (void *)&fine, err, sizeof err, 5);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && err[0] == 0, "a correct child did not exit cleanly: %s", err);
  return t_finish();
}
