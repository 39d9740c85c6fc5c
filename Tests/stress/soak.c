/*
 * Tests/stress/soak.c: a mixed multi-threaded workload with a constant live
 * size, for Tests/stress/soak.py (which preloads the library, samples VmRSS
 * and applies the leak rule).
 *
 *   soak [-s SECONDS] [-t THREADS] [-l LIVE_MIB] [-S SEED] [-f FORK_EVERY_MS]
 *
 * THREADS workers (4) share SLOTS block slots. Each worker runs a random
 * number of operations, then exits and the main thread starts another in
 * its place (threads come and go all the time). An operation takes a random
 * slot (a per-slot try-lock) and:
 *   - checks the block there: its content, its alignment, its usable size;
 *   - then, while the live size is below the target (LIVE_MIB, 64), fills an
 *     empty slot (malloc, calloc (checked zero), posix_memalign,
 *     aligned_alloc, memalign, valloc or realloc(NULL)), or reallocs a full
 *     one to a new size (the common prefix checked after the move), or frees
 *     it; above the target it frees: directly, or by handing the block to a
 *     shared queue from which another thread frees it (cross-thread free).
 * Sizes: 75% 1 B .. 1 KiB, 22% .. 64 KiB, 3% .. 1 MiB (beyond the mmap
 * threshold); alignments 16 B .. 64 KiB and, rarely, 1 MiB. Every block is
 * filled with a pattern derived from its address and offset, and checked
 * before every realloc and free. Now and then a worker calls malloc_trim(0).
 *
 * Every FORK_EVERY_MS (1500) the main thread forks while the workers run;
 * the child checks a sample of the blocks (those whose slot was not locked
 * at the fork), allocates, checks and frees 2000 blocks of its own and
 * leaves with _exit(0) or, one time in three, exit(0); the parent requires
 * exit status 0 (a child that hangs is killed by its alarm after 30 s).
 *
 * Once a second the main thread prints one status line:
 *   t=SEC live=BYTES blocks=N ops=N checks=N threads=N forks=N xfrees=N
 * and at the end, after every block was checked and freed:
 *   done t=SEC ops=N checks=N threads=N forks=N xfrees=N
 * A failed check prints "soak: FAIL ..." on stderr (write(2)) and aborts.
 * Worker threads use no stdio.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 8192
#define QCAP 4096
#define MAXTHREADS 64

enum { K_MALLOC, K_CALLOC, K_POSIX_MEMALIGN, K_ALIGNED_ALLOC, K_MEMALIGN, K_VALLOC, K_REALLOC_NULL, K_REALLOC };

typedef struct {
  atomic_int lock;
  unsigned char *p;
  size_t size;
  size_t align;
} slot_t;

typedef struct {
  unsigned char *p;
  size_t size;
  size_t align;
  int owner;
} qent_t;

static slot_t slots[SLOTS];
static qent_t queue[QCAP];
static size_t qhead, qlen;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;

static atomic_long live_bytes, live_blocks, n_ops, n_checks, n_xfrees;
static atomic_int stop_flag;
static long target_bytes = 64L << 20;
static long page_size;

/* ------------------------------------------------------------ failures */
static void die(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  int n = snprintf(buf, sizeof buf, "soak: FAIL [pid %d] ", (int)getpid());
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  (void)!write(2, buf, (size_t)n);
  abort();
}

/* ------------------------------------------------------------ random */
static inline uint64_t rnd(uint64_t *s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static size_t rand_size(uint64_t *s) {
  uint64_t r = rnd(s) % 100;
  if (r < 75) return (rnd(s) & 1) ? 1 + rnd(s) % 128 : 1 + rnd(s) % 1024;
  if (r < 97) return 1024 + rnd(s) % (63 * 1024);
  return 64 * 1024 + rnd(s) % (960 * 1024);
}

static size_t rand_align(uint64_t *s) {
  if (rnd(s) % 1000 == 0) return 1 << 20;
  return (size_t)1 << (4 + rnd(s) % 13); /* 16 B .. 64 KiB */
}

/* ------------------------------------------------------------ pattern */
static inline uint64_t mix(uint64_t x) {
  x *= 0x9E3779B97F4A7C15ULL;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ULL;
  return x ^ (x >> 32);
}

/* The pattern of a block keyed by address `key`: word i is mix(key + 8i). */
static void fill(unsigned char *p, size_t n, uintptr_t key) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = mix(key + i);
    memcpy(p + i, &w, 8);
  }
  if (i < n) {
    uint64_t w = mix(key + i);
    memcpy(p + i, &w, n - i);
  }
}

/* Returns the offset of the first byte that differs, or (size_t)-1. */
static size_t check(const unsigned char *p, size_t n, uintptr_t key) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = mix(key + i), v;
    memcpy(&v, p + i, 8);
    if (v != w) goto bytes;
  }
  if (i < n) {
    uint64_t w = mix(key + i);
    if (memcmp(p + i, &w, n - i) != 0) goto bytes;
  }
  return (size_t)-1;
bytes:
  for (size_t j = i; j < n && j < i + 8; j++) {
    uint64_t w = mix(key + (j & ~(size_t)7));
    if (p[j] != ((unsigned char *)&w)[j & 7]) return j;
  }
  return i;
}

static void check_block(const char *when, unsigned char *p, size_t size, size_t align) {
  size_t bad = check(p, size, (uintptr_t)p);
  if (bad != (size_t)-1)
    die("%s: block %p of %zu bytes differs at offset %zu", when, (void *)p, size, bad);
  if (((uintptr_t)p & 15) != 0) die("%s: block %p not 16-byte aligned", when, (void *)p);
  if (align && ((uintptr_t)p & (align - 1)) != 0)
    die("%s: block %p not aligned to %zu", when, (void *)p, align);
  if (p && malloc_usable_size(p) < size)
    die("%s: malloc_usable_size(%p) = %zu < %zu", when, (void *)p, malloc_usable_size(p), size);
  atomic_fetch_add_explicit(&n_checks, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------ blocks */
static unsigned char *new_block(uint64_t *s, size_t *size_out, size_t *align_out) {
  size_t size = rand_size(s), align = 0;
  unsigned char *p = NULL;
  int kind = (int)(rnd(s) % 100);
  void *q = NULL;
  if (kind < 45) kind = K_MALLOC;
  else if (kind < 60) kind = K_CALLOC;
  else if (kind < 70) kind = K_POSIX_MEMALIGN;
  else if (kind < 80) kind = K_ALIGNED_ALLOC;
  else if (kind < 87) kind = K_MEMALIGN;
  else if (kind < 90) kind = K_VALLOC;
  else kind = K_REALLOC_NULL;
  switch (kind) {
  case K_MALLOC: p = malloc(size); break;
  case K_CALLOC: {
    size_t n = 1 + rnd(s) % 16, each = (size + n - 1) / n;
    size = n * each;
    p = calloc(n, each);
    if (p)
      for (size_t i = 0; i < size; i++)
        if (p[i]) die("calloc(%zu, %zu) = %p: byte %zu is %d, not 0", n, each, (void *)p, i, p[i]);
    break;
  }
  case K_POSIX_MEMALIGN: {
    int e;
    align = rand_align(s);
    if (align < sizeof(void *)) align = sizeof(void *);
    e = posix_memalign(&q, align, size);
    if (e != 0) die("posix_memalign(%zu, %zu) failed: %d", align, size, e);
    p = q;
    break;
  }
  case K_ALIGNED_ALLOC:
    align = rand_align(s);
    size = (size + align - 1) & ~(align - 1); /* C11: a multiple of the alignment */
    p = aligned_alloc(align, size);
    break;
  case K_MEMALIGN: align = rand_align(s); p = memalign(align, size); break;
  case K_VALLOC: align = (size_t)page_size; p = valloc(size); break;
  default: p = realloc(NULL, size); break;
  }
  if (!p) die("allocation of %zu bytes (kind %d, align %zu) returned NULL: errno %d", size, kind, align, errno);
  if (((uintptr_t)p & 15) != 0) die("new block %p not 16-byte aligned", (void *)p);
  if (align && ((uintptr_t)p & (align - 1)) != 0) die("new block %p not aligned to %zu", (void *)p, align);
  if (malloc_usable_size(p) < size) die("malloc_usable_size(%p) = %zu < %zu", (void *)p, malloc_usable_size(p), size);
  fill(p, size, (uintptr_t)p);
  *size_out = size;
  *align_out = align;
  return p;
}

static void release(unsigned char *p, size_t size, size_t align) {
  check_block("before free", p, size, align);
  free(p);
  atomic_fetch_sub_explicit(&live_bytes, (long)size, memory_order_relaxed);
  atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
}

static int trylock(slot_t *sl) { return atomic_exchange_explicit(&sl->lock, 1, memory_order_acquire) == 0; }
static void unlock(slot_t *sl) { atomic_store_explicit(&sl->lock, 0, memory_order_release); }

static int queue_push(unsigned char *p, size_t size, size_t align, int owner) {
  int ok = 0;
  pthread_mutex_lock(&qlock);
  if (qlen < QCAP) {
    queue[(qhead + qlen) % QCAP] = (qent_t){p, size, align, owner};
    qlen++;
    ok = 1;
  }
  pthread_mutex_unlock(&qlock);
  return ok;
}

/* Frees one queued block that another thread queued. */
static void queue_pop_free(int self) {
  qent_t e = {0};
  pthread_mutex_lock(&qlock);
  if (qlen > 0 && queue[qhead].owner != self) {
    e = queue[qhead];
    qhead = (qhead + 1) % QCAP;
    qlen--;
  }
  pthread_mutex_unlock(&qlock);
  if (e.p) {
    release(e.p, e.size, e.align);
    atomic_fetch_add_explicit(&n_xfrees, 1, memory_order_relaxed);
  }
}

static void one_op(uint64_t *s, int self) {
  slot_t *sl = &slots[rnd(s) % SLOTS];
  if (!trylock(sl)) return;
  long live = atomic_load_explicit(&live_bytes, memory_order_relaxed);
  uint64_t r = rnd(s) % 100;
  if (sl->p) {
    check_block("check", sl->p, sl->size, sl->align);
    if (live < target_bytes && r < 40) {
      /* realloc to a new size: the common prefix must survive the move */
      size_t ns = (rnd(s) % 8 == 0) ? 0 : rand_size(s);
      unsigned char *old = sl->p;
      uintptr_t oldkey = (uintptr_t)old; /* the old address: only a number after realloc */
      size_t os = sl->size;
      unsigned char *np = realloc(old, ns);
      if (ns == 0) {
        /* glibc semantics: realloc(p, 0) frees p and returns NULL */
        if (np) die("realloc(%#lx, 0) returned %p, not NULL", (unsigned long)oldkey, (void *)np);
        atomic_fetch_sub_explicit(&live_bytes, (long)os, memory_order_relaxed);
        atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
        sl->p = NULL;
      } else {
        if (!np) die("realloc(%#lx, %zu) returned NULL", (unsigned long)oldkey, ns);
        size_t keep = os < ns ? os : ns;
        size_t bad = check(np, keep, oldkey);
        if (bad != (size_t)-1)
          die("realloc(%#lx, %zu -> %zu) = %p: contents differ at offset %zu", (unsigned long)oldkey, os, ns, (void *)np, bad);
        if (((uintptr_t)np & 15) != 0) die("realloc result %p not 16-byte aligned", (void *)np);
        if (malloc_usable_size(np) < ns) die("malloc_usable_size(%p) < %zu after realloc", (void *)np, ns);
        fill(np, ns, (uintptr_t)np);
        sl->p = np;
        sl->size = ns;
        sl->align = 0;
        atomic_fetch_add_explicit(&live_bytes, (long)ns - (long)os, memory_order_relaxed);
      }
    } else if (live >= target_bytes || r < 70) {
      unsigned char *p = sl->p;
      size_t size = sl->size, align = sl->align;
      sl->p = NULL;
      if (rnd(s) % 3 == 0 && queue_push(p, size, align, self)) {
        /* another thread frees it */
      } else {
        release(p, size, align);
      }
    }
  } else if (live < target_bytes) {
    size_t size, align;
    unsigned char *p = new_block(s, &size, &align);
    sl->p = p;
    sl->size = size;
    sl->align = align;
    atomic_fetch_add_explicit(&live_bytes, (long)size, memory_order_relaxed);
    atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
  }
  unlock(sl);
  if (rnd(s) % 4 == 0) queue_pop_free(self);
  if (rnd(s) % 200000 == 0) malloc_trim(0);
  atomic_fetch_add_explicit(&n_ops, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------ threads */
typedef struct {
  pthread_t tid;
  atomic_int running; /* 1 while the thread runs, 0 once it is done */
  int used;
  int serial;
  uint64_t seed;
} worker_t;

static worker_t workers[MAXTHREADS];

static void *worker_main(void *arg) {
  worker_t *w = arg;
  uint64_t s = w->seed | 1;
  long ops = 5000 + (long)(rnd(&s) % 100000);
  /* some thread-local garbage that lives as long as the thread */
  unsigned char *mine[32];
  size_t mine_size[32];
  for (int i = 0; i < 32; i++) {
    mine_size[i] = rand_size(&s) % 4096 + 1;
    mine[i] = malloc(mine_size[i]);
    if (!mine[i]) die("malloc(%zu) returned NULL", mine_size[i]);
    fill(mine[i], mine_size[i], (uintptr_t)mine[i]);
  }
  for (long i = 0; i < ops && !atomic_load_explicit(&stop_flag, memory_order_relaxed); i++) one_op(&s, w->serial);
  for (int i = 0; i < 32; i++) {
    size_t bad = check(mine[i], mine_size[i], (uintptr_t)mine[i]);
    if (bad != (size_t)-1) die("thread-local block %p differs at %zu", (void *)mine[i], bad);
    free(mine[i]);
  }
  atomic_store_explicit(&w->running, 0, memory_order_release);
  return NULL;
}

static int nthreads_started;

static void start_worker(worker_t *w, uint64_t seed) {
  w->serial = ++nthreads_started;
  w->seed = mix(seed + (uint64_t)w->serial);
  atomic_store(&w->running, 1);
  w->used = 1;
  int e = pthread_create(&w->tid, NULL, worker_main, w);
  if (e) die("pthread_create: %d", e);
}

/* ------------------------------------------------------------ fork */
static void fork_child(uint64_t seed, int use_exit) {
  uint64_t s = mix(seed ^ (uint64_t)getpid()) | 1;
  alarm(30);
  /* the parent's blocks whose slot was free at the fork */
  int seen = 0;
  for (int i = 0; i < SLOTS && seen < 200; i += 1 + (int)(rnd(&s) % 64)) {
    slot_t *sl = &slots[i];
    if (atomic_load(&sl->lock) == 0 && sl->p) {
      check_block("fork child: parent's block", sl->p, sl->size, sl->align);
      seen++;
    }
  }
  unsigned char *ps[64] = {0};
  size_t sz[64], al[64];
  for (int i = 0; i < 2000; i++) {
    int k = (int)(rnd(&s) % 64);
    if (ps[k]) {
      check_block("fork child", ps[k], sz[k], al[k]);
      free(ps[k]);
    }
    ps[k] = new_block(&s, &sz[k], &al[k]);
  }
  for (int k = 0; k < 64; k++)
    if (ps[k]) {
      check_block("fork child", ps[k], sz[k], al[k]);
      free(ps[k]);
    }
  if (use_exit) exit(0);
  _exit(0);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  double seconds = 60;
  int nthreads = 4, opt;
  uint64_t seed = 0x5EED;
  long fork_ms = 1500;
  while ((opt = getopt(argc, argv, "s:t:l:S:f:")) != -1) {
    switch (opt) {
    case 's': seconds = atof(optarg); break;
    case 't': nthreads = atoi(optarg); break;
    case 'l': target_bytes = atol(optarg) << 20; break;
    case 'S': seed = strtoull(optarg, NULL, 0); break;
    case 'f': fork_ms = atol(optarg); break;
    default:
      fprintf(stderr, "usage: %s [-s SECONDS] [-t THREADS] [-l LIVE_MIB] [-S SEED] [-f FORK_EVERY_MS]\n", argv[0]);
      return 2;
    }
  }
  if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 4;
  page_size = sysconf(_SC_PAGESIZE);
  setvbuf(stdout, NULL, _IOLBF, 0);

  double t0 = now(), next_print = t0 + 1, next_fork = t0 + (double)fork_ms / 1000;
  long forks = 0;
  for (int i = 0; i < nthreads; i++) start_worker(&workers[i], seed);
  while (now() - t0 < seconds) {
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    /* threads come and go */
    for (int i = 0; i < nthreads; i++) {
      worker_t *w = &workers[i];
      if (w->used && !atomic_load_explicit(&w->running, memory_order_acquire)) {
        pthread_join(w->tid, NULL);
        start_worker(w, seed);
      }
    }
    double t = now();
    if (fork_ms > 0 && t >= next_fork) {
      next_fork = t + (double)fork_ms / 1000;
      forks++;
      fflush(stdout);
      pid_t pid = fork();
      if (pid < 0) die("fork: %s", strerror(errno));
      if (pid == 0) fork_child(seed + (uint64_t)forks, forks % 3 == 0);
      int st;
      if (waitpid(pid, &st, 0) != pid) die("waitpid: %s", strerror(errno));
      if (WIFSIGNALED(st))
        die("fork child %d killed by signal %d%s", (int)pid, WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (hung 30 s)" : "");
      if (WEXITSTATUS(st) != 0) die("fork child %d exit status %d", (int)pid, WEXITSTATUS(st));
    }
    if (t >= next_print) {
      next_print += 1;
      printf("t=%.0f live=%ld blocks=%ld ops=%ld checks=%ld threads=%d forks=%ld xfrees=%ld\n", t - t0,
             atomic_load(&live_bytes), atomic_load(&live_blocks), atomic_load(&n_ops), atomic_load(&n_checks),
             nthreads_started, forks, atomic_load(&n_xfrees));
    }
  }
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < nthreads; i++)
    if (workers[i].used) pthread_join(workers[i].tid, NULL);
  /* everything left: queued blocks and the slots */
  while (qlen > 0) queue_pop_free(-1);
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].p) {
      release(slots[i].p, slots[i].size, slots[i].align);
      slots[i].p = NULL;
    }
  if (atomic_load(&live_bytes) != 0 || atomic_load(&live_blocks) != 0)
    die("bookkeeping: %ld bytes in %ld blocks left", atomic_load(&live_bytes), atomic_load(&live_blocks));
  printf("done t=%.0f ops=%ld checks=%ld threads=%d forks=%ld xfrees=%ld\n", now() - t0, atomic_load(&n_ops),
         atomic_load(&n_checks), nthreads_started, forks, atomic_load(&n_xfrees));
  return 0;
}
