/*
 * Tests/misuse/cases.c: one heap misuse per run, chosen by argv[1].
 *
 *   cases <name>
 *
 * Run preloaded (LD_PRELOAD=build/libswiftmalloc.so or -secure.so) by
 * battery.c, which checks how the process ends. Before the bad call a case
 * writes "PTR 0x<hex>" to stdout (with write(2), no stdio buffering) naming
 * the pointer it is about to misuse, so the runner can compare it with the
 * pointer in swiftmalloc's message. A case whose bad call returns writes
 * "SURVIVED" and exits 0; a check case (read after free) writes "OK" or
 * "BAD ..." and exits 0 or 1. Nothing here writes to stderr, so anything on
 * stderr came from the allocator.
 *
 * Built with -O0 -fno-builtin so the compiler keeps every call as written;
 * launder() hides where a pointer came from.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *launder(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

static void out(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(1, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void say_ptr(const void *p) {
  char buf[40] = "PTR 0x";
  char hex[20];
  uintptr_t v = (uintptr_t)p;
  int d = 0;
  do { hex[d++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
  size_t n = 6;
  while (d > 0) buf[n++] = hex[--d];
  buf[n++] = '\n';
  buf[n] = 0;
  out(buf);
}

static void survived(void) {
  out("SURVIVED\n");
  _exit(0);
}

static void *must_malloc(size_t n) {
  char *p = malloc(n);
  if (!p) { out("BAD malloc failed\n"); _exit(91); }
  memset(p, 0x5a, n);
  return launder(p);
}

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

static void *sym(const char *name) {
  void *f = dlsym(RTLD_DEFAULT, name);
  if (!f) { out("BAD no symbol "); out(name); out("\n"); _exit(92); }
  return f;
}

/* MARK: double free ------------------------------------------------------ */

static void double_free_small(void) {
  char *p = must_malloc(200);
  say_ptr(p);
  free(p);
  free(launder(p));
  survived();
}

/* Other sizes in between: nothing of p's class (200 -> 208) is allocated, so
 * p stays free and is not handed out again. */
static void double_free_later(void) {
  static const size_t sizes[] = {16, 40, 100, 1000, 3000, 5000, 40000, 70000, 300000};
  void *keep[64];
  char *p = must_malloc(200);
  say_ptr(p);
  free(p);
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 9; i++) keep[round * 9 + i] = must_malloc(sizes[i]);
    for (int i = 0; i < 9; i += 2) { free(keep[round * 9 + i]); keep[round * 9 + i] = NULL; }
  }
  free(launder(p));
  survived();
}

static sem_t freed_by_a, go_b;
static void *shared_block;

static void *thread_a(void *arg) {
  (void)arg;
  free(shared_block);
  sem_post(&freed_by_a);
  return NULL;
}

static void *thread_a_waits(void *arg) {
  (void)arg;
  free(shared_block);
  sem_post(&freed_by_a);
  for (;;) pause();  /* stays alive: p sits in this thread's cache */
  return NULL;
}

static void *thread_b(void *arg) {
  (void)arg;
  sem_wait(&go_b);
  free(launder(shared_block));
  survived();
  return NULL;
}

/* Thread A frees and stays alive; thread B frees again. Both threads exist
 * before the first free, so pthread_create cannot reuse the block. */
static void double_free_threads(void) {
  pthread_t a, b;
  sem_init(&freed_by_a, 0, 0);
  sem_init(&go_b, 0, 0);
  shared_block = must_malloc(200);
  if (pthread_create(&b, NULL, thread_b, NULL)) _exit(93);
  if (pthread_create(&a, NULL, thread_a_waits, NULL)) _exit(93);
  say_ptr(shared_block);
  usleep(1000);
  sem_wait(&freed_by_a);
  sem_post(&go_b);
  pthread_join(b, NULL);
  survived();
}

/* Thread A frees and exits (its cache goes back to the central list);
 * thread B frees again. */
static void double_free_thread_exited(void) {
  pthread_t a, b;
  sem_init(&freed_by_a, 0, 0);
  sem_init(&go_b, 0, 0);
  shared_block = must_malloc(200);
  if (pthread_create(&b, NULL, thread_b, NULL)) _exit(93);
  if (pthread_create(&a, NULL, thread_a, NULL)) _exit(93);
  say_ptr(shared_block);
  sem_wait(&freed_by_a);
  pthread_join(a, NULL);
  sem_post(&go_b);
  pthread_join(b, NULL);
  survived();
}

static void double_free_medium(void) {
  char *p = must_malloc(64 << 10);
  say_ptr(p);
  free(p);
  free(launder(p));
  survived();
}

static void double_free_large(void) {
  char *p = must_malloc(1 << 20);
  say_ptr(p);
  free(p);
  free(launder(p));
  survived();
}

/* MARK: invalid pointers -------------------------------------------------- */

static void free_at(size_t size, size_t offset) {
  char *p = must_malloc(size);
  say_ptr(p + offset);
  free(launder(p + offset));
  survived();
}

static void free_interior_small(void) { free_at(64, 16); }
static void free_interior_medium(void) { free_at(64 << 10, 16); }
static void free_interior_medium_page(void) { free_at(64 << 10, 4096 + 16); }
static void free_interior_large(void) { free_at(1 << 20, 16); }
static void free_interior_large_page(void) { free_at(1 << 20, 65536); }
static void free_unaligned(void) { free_at(32, 1); }
static void free_unaligned_large(void) { free_at(1 << 20, 1); }

static void free_stack(void) {
  char buf[256] __attribute__((aligned(16)));
  memset(buf, 1, sizeof buf);
  say_ptr(buf + 32);
  free(launder(buf + 32));
  survived();
}

static char global_buf[4096] __attribute__((aligned(64)));

static void free_global(void) {
  global_buf[0] = 1;
  say_ptr(global_buf + 64);
  free(launder(global_buf + 64));
  survived();
}

static void free_garbage(void) {
  void *p = (void *)(uintptr_t)0x123456789a0ULL;
  say_ptr(p);
  free(launder(p));
  survived();
}

static void realloc_freed(void) {
  char *p = must_malloc(200);
  say_ptr(p);
  free(p);
  void *q = realloc(launder(p), 300);
  launder(q);
  survived();
}

static void realloc_freed_large(void) {
  char *p = must_malloc(1 << 20);
  say_ptr(p);
  free(p);
  void *q = realloc(launder(p), 2 << 20);
  launder(q);
  survived();
}

static void realloc_stack(void) {
  char buf[256] __attribute__((aligned(16)));
  memset(buf, 1, sizeof buf);
  say_ptr(buf + 32);
  void *q = realloc(launder(buf + 32), 300);
  launder(q);
  survived();
}

static void usable_size_stack(void) {
  char buf[256] __attribute__((aligned(16)));
  memset(buf, 1, sizeof buf);
  say_ptr(buf + 32);
  size_t n = malloc_usable_size(launder(buf + 32));
  launder((void *)n);
  survived();
}

static void free_sized_small_wrong(void) {
  free_sized_fn fs = (free_sized_fn)sym("free_sized");
  char *p = must_malloc(1000);
  say_ptr(p);
  fs(p, 5000);
  survived();
}

/* a size smaller than the block's but of another class (hardened_malloc's rule) */
static void free_sized_small_smaller(void) {
  free_sized_fn fs = (free_sized_fn)sym("free_sized");
  char *p = must_malloc(5000);
  say_ptr(p);
  fs(p, 64);
  survived();
}

static void free_sized_medium_wrong(void) {
  free_sized_fn fs = (free_sized_fn)sym("free_sized");
  char *p = must_malloc(100000);
  say_ptr(p);
  fs(p, 10);
  survived();
}

/* The claimed alignment is twice the pointer's actual alignment. */
static void free_aligned_sized_wrong(void) {
  free_aligned_sized_fn fas = (free_aligned_sized_fn)sym("free_aligned_sized");
  char *p = aligned_alloc(64, 256);
  if (!p) _exit(91);
  memset(p, 1, 256);
  uintptr_t v = (uintptr_t)p;
  size_t claimed = (size_t)(v & (~v + 1)) << 1;
  say_ptr(p);
  fas(launder(p), claimed, 256);
  survived();
}

static void free_aligned_sized_npot(void) {
  free_aligned_sized_fn fas = (free_aligned_sized_fn)sym("free_aligned_sized");
  char *p = aligned_alloc(64, 256);
  if (!p) _exit(91);
  memset(p, 1, 256);
  say_ptr(p);
  fas(launder(p), 48, 256);
  survived();
}

/* MARK: secure mode ---------------------------------------------------------- */

static void overflow_1(void) {
  char *p = must_malloc(10);
  p[10] = 1;
  say_ptr(p);
  free(p);
  survived();
}

static void overflow_8(void) {
  char *p = must_malloc(10);
  memset(p + 10, 0x41, 8);
  say_ptr(p);
  free(p);
  survived();
}

/* 24 bytes past a 24-byte request reach the size word at the end of the
 * 48-byte slot (24 + 16 bytes of canary and size -> class 48). */
static void overflow_trailer(void) {
  char *p = must_malloc(24);
  memset(p + 24, 0x41, 24);
  say_ptr(p);
  free(p);
  survived();
}

static void overflow_1_realloc(void) {
  char *p = must_malloc(10);
  p[10] = 1;
  say_ptr(p);
  void *q = realloc(p, 500);
  launder(q);
  survived();
}

static void overflow_1_usable_size(void) {
  char *p = must_malloc(10);
  p[10] = 1;
  say_ptr(p);
  size_t n = malloc_usable_size(p);
  launder((void *)n);
  survived();
}

/* free, write into the block, then 2048 malloc/free pairs of the same size:
 * the quarantine (1024 blocks) gives the block back during the loop. */
static void write_after_free(void) {
  char *p = must_malloc(200);
  say_ptr(p);
  free(p);
  ((volatile char *)launder(p))[100] = 0x41;
  for (int i = 0; i < 2048; i++) {
    void *q = must_malloc(200);
    free(q);
  }
  survived();
}

/* Secure mode: a block that has left the quarantine sits on its span's free
 * list, its link encoded with the per-process key. A write after free that
 * forges the link is caught when malloc takes the block, before the link is
 * followed. */
static void corrupted_link(void) {
  char *keep = must_malloc(80); /* a live block keeps p's span in use */
  char *p = must_malloc(80);
  say_ptr(p);
  free(p);
  /* push p out of the quarantine (1024 blocks) with blocks of another class */
  for (int i = 0; i < 1100; i++) free(must_malloc(32));
  ((volatile uintptr_t *)launder(p))[0] = (uintptr_t)p + 4096; /* a plausible pointer */
  for (int i = 0; i < 64; i++) must_malloc(80);
  free(keep);
  survived();
}

/* Freed memory reads as zero in secure mode: every byte of the request (the
 * freed tag sits in the block's trailer, past the caller's bytes). */
static int read_after_free_from(size_t from) {
  volatile unsigned char *p = must_malloc(64);
  memset((void *)p, 0xaa, 64);
  say_ptr((void *)p);
  free((void *)p);
  for (size_t i = from; i < 64; i++) {
    
    if (p[i] != 0) {
      char msg[64] = "BAD nonzero byte at offset ";
      size_t n = strlen(msg);
      if (i >= 10) msg[n++] = (char)('0' + i / 10);
      msg[n++] = (char)('0' + i % 10);
      msg[n++] = '\n';
      msg[n] = 0;
      out(msg);
      _exit(1);
    }
  }
  out("OK\n");
  _exit(0);
}

static void read_after_free(void) { read_after_free_from(16); }
static void read_after_free_all(void) { read_after_free_from(0); }

/* zero-size blocks point into memory nobody may touch */
static void zero_size_write(void) {
  char *p = malloc(0);
  if (!p) { out("BAD malloc(0) returned NULL\n"); _exit(1); }
  say_ptr(p);
  ((volatile char *)p)[0] = 1;
  survived();
}

static void zero_size_read(void) {
  char *p = calloc(0, 8);
  if (!p) { out("BAD calloc(0, 8) returned NULL\n"); _exit(1); }
  say_ptr(p);
  launder((void *)(uintptr_t)((volatile char *)p)[0]);
  survived();
}

/* ... and are freed, resized, measured and sized as blocks of 0 bytes */
static void zero_size_correct(void) {
  free_sized_fn fs = (free_sized_fn)sym("free_sized");
  char *p = malloc(0), *q = malloc(0);
  if (!p || !q || p == q || malloc_usable_size(p) != 0) { out("BAD zero-size blocks\n"); _exit(1); }
  fs(p, 0);
  q = realloc(q, 32);
  if (!q) { out("BAD realloc of a zero-size block\n"); _exit(1); }
  memset(q, 1, 32);
  free(q);
  out("OK\n");
  _exit(0);
}

static void zero_size_free_sized_wrong(void) {
  free_sized_fn fs = (free_sized_fn)sym("free_sized");
  char *p = malloc(0);
  say_ptr(p);
  fs(p, 8);
  survived();
}

static void mmap_overflow_guard(void) {
  char *p = must_malloc(1 << 20);
  say_ptr(p);
  ((volatile char *)p)[1 << 20] = 1;
  survived();
}

static void mmap_underflow_guard(void) {
  char *p = must_malloc(1 << 20);
  say_ptr(p);
  ((volatile char *)p)[-1] = 1;
  survived();
}

static void medium_overflow_guard(void) {
  char *p = must_malloc(64 << 10);
  say_ptr(p);
  ((volatile char *)p)[64 << 10] = 1;
  survived();
}

/* MARK: control ---------------------------------------------------------- */

static void correct_use(void) {
  free_sized_fn fs = (free_sized_fn)sym("free_sized");
  void *keep[100];
  for (int i = 0; i < 100; i++) keep[i] = must_malloc((size_t)(i * 997) % 300000 + 1);
  for (int i = 0; i < 100; i += 2) free(keep[i]);
  for (int i = 1; i < 100; i += 2) keep[i] = realloc(keep[i], (size_t)i * 33);
  for (int i = 1; i < 100; i += 2) fs(keep[i], (size_t)i * 33);
  char *p = must_malloc(1000);
  say_ptr(p);
  free(p);
  out("OK\n");
  _exit(0);
}

/* Correct use: live zero-size blocks with a large alignment are distinct
 * pointers, and freeing each once is fine. */
static void aligned_zero_unique(void) {
  void *p[32];
  for (int i = 0; i < 32; i++) {
    p[i] = aligned_alloc(1 << 19, 0);
    if (!p[i]) { out("BAD aligned_alloc(512 KiB, 0) returned NULL\n"); _exit(1); }
    for (int j = 0; j < i; j++)
      if (p[j] == p[i]) {
        say_ptr(p[i]);
        out("BAD two live blocks share this pointer\n");
        _exit(1);
      }
  }
  for (int i = 0; i < 32; i++) free(p[i]);
  out("OK\n");
  _exit(0);
}

struct entry {
  const char *name;
  void (*run)(void);
};

static const struct entry entries[] = {
  {"double_free_small", double_free_small},
  {"double_free_later", double_free_later},
  {"double_free_threads", double_free_threads},
  {"double_free_thread_exited", double_free_thread_exited},
  {"double_free_medium", double_free_medium},
  {"double_free_large", double_free_large},
  {"free_interior_small", free_interior_small},
  {"free_interior_medium", free_interior_medium},
  {"free_interior_medium_page", free_interior_medium_page},
  {"free_interior_large", free_interior_large},
  {"free_interior_large_page", free_interior_large_page},
  {"free_unaligned", free_unaligned},
  {"free_unaligned_large", free_unaligned_large},
  {"free_stack", free_stack},
  {"free_global", free_global},
  {"free_garbage", free_garbage},
  {"realloc_freed", realloc_freed},
  {"realloc_freed_large", realloc_freed_large},
  {"realloc_stack", realloc_stack},
  {"usable_size_stack", usable_size_stack},
  {"free_sized_small_wrong", free_sized_small_wrong},
  {"free_sized_small_smaller", free_sized_small_smaller},
  {"free_sized_medium_wrong", free_sized_medium_wrong},
  {"free_aligned_sized_wrong", free_aligned_sized_wrong},
  {"free_aligned_sized_npot", free_aligned_sized_npot},
  {"overflow_1", overflow_1},
  {"overflow_8", overflow_8},
  {"overflow_trailer", overflow_trailer},
  {"overflow_1_realloc", overflow_1_realloc},
  {"overflow_1_usable_size", overflow_1_usable_size},
  {"write_after_free", write_after_free},
  {"corrupted_link", corrupted_link},
  {"read_after_free", read_after_free},
  {"read_after_free_all", read_after_free_all},
  {"zero_size_write", zero_size_write},
  {"zero_size_read", zero_size_read},
  {"zero_size_correct", zero_size_correct},
  {"zero_size_free_sized_wrong", zero_size_free_sized_wrong},
  {"mmap_overflow_guard", mmap_overflow_guard},
  {"mmap_underflow_guard", mmap_underflow_guard},
  {"medium_overflow_guard", medium_overflow_guard},
  {"correct_use", correct_use},
  {"aligned_zero_unique", aligned_zero_unique},
};

int main(int argc, char **argv) {
  if (argc != 2) { out("usage: cases <name>\n"); return 2; }
  for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
    if (strcmp(entries[i].name, argv[1]) == 0) {
      entries[i].run();
      return 0;
    }
  }
  out("BAD unknown case\n");
  return 2;
}
