/*
 * workloads.c: the synthetic allocator workloads of `make bench`.
 *
 *   wl NAME [-s SCALE] [-t THREADS]
 *
 * NAME is one of: fastpath batch larson prodcons thrash scratch realloc frag
 * large.  SCALE (default 1.0) multiplies every iteration count (QUICK=1 uses
 * a small one); THREADS is the thread count of the multi-threaded workloads.
 *
 * Each workload prints its own measurements as lines
 *
 *   METRIC <key> <value> <unit> <lower|higher>
 *
 * (the last field says which direction is better), plus one line
 * `ALLOCLIB <path>` naming the library malloc resolves into (dladdr: the
 * preloaded allocator, or e.g. /lib/x86_64-linux-gnu/libc.so.6), so the
 * driver can check the preload took effect.
 *
 * Every object written is also checked before it is freed (a tag byte at
 * each end); a mismatch exits with status 4 ("heap corruption"), a NULL from
 * malloc with status 3.  Nothing here asserts speed.
 *
 * All workloads are written from scratch for this harness; they model what
 * the classic allocator benchmarks measure (larson, xmalloc, cache-thrash,
 * cache-scratch, ...) without reusing their code.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double scale = 1.0;
static int nthreads = 0; /* 0: workload default */

/* Sinks the optimiser must honour: storing a pointer into a volatile global
 * makes it escape, so a malloc/free pair can't be elided. */
static void *volatile sink_ptr;
static volatile unsigned long sink_val;

/* ---------------------------------------------------------------- helpers */

static inline uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long scaled(long n)
{
    double v = (double)n * scale;
    return v < 1.0 ? 1 : (long)v;
}

static void metric(const char *key, double v, const char *unit, const char *better)
{
    printf("METRIC %s %.6g %s %s\n", key, v, unit, better);
    fflush(stdout);
}

__attribute__((noreturn)) static void oom(size_t n)
{
    fprintf(stderr, "allocation of %zu bytes returned NULL\n", n);
    exit(3);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) returned NULL\n", n);
        exit(3);
    }
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p) {
        fprintf(stderr, "calloc(%zu, %zu) returned NULL\n", n, sz);
        exit(3);
    }
    return p;
}

/* Tag both ends of an object so corruption (or a double hand-out) shows. */
static inline unsigned char tag_of(size_t sz) { return (unsigned char)(sz * 131u + 7u); }

static inline void tag(void *p, size_t sz)
{
    unsigned char t = tag_of(sz);
    ((volatile unsigned char *)p)[0] = t;
    ((volatile unsigned char *)p)[sz - 1] = t;
}

static inline void check(const void *p, size_t sz, const char *where)
{
    unsigned char t = tag_of(sz);
    const volatile unsigned char *c = p;
    if (c[0] != t || c[sz - 1] != t) {
        fprintf(stderr, "%s: heap corruption: object %p size %zu tag %02x/%02x expected %02x\n",
                where, p, sz, c[0], c[sz - 1], t);
        exit(4);
    }
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void xpthread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc) {
        fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        exit(5);
    }
}

static double peak_rss_bytes(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

static double cur_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

/* Report the library malloc resolves into (dladdr on its address: the file
 * the dynamic linker bound this program's malloc to), so the driver can
 * check that the preload took effect.  Only where malloc lives counts; the
 * program's own path, whatever words it contains, plays no part.  (The
 * program is a PIE, so malloc's address is the definition's, not a PLT
 * slot of the executable.) */
static void report_alloclib(void)
{
    void *(*volatile malloc_fn)(size_t) = malloc;
    Dl_info info;
    if (dladdr((void *)malloc_fn, &info) && info.dli_fname && info.dli_fname[0])
        printf("ALLOCLIB %s\n", info.dli_fname);
    else
        printf("ALLOCLIB unknown\n");
}

/* ------------------------------------------------------------ 1. fastpath */
/* malloc+free of one size, back to back, one thread: the allocator's
 * thread-local fast path. */
static void wl_fastpath(void)
{
    static const size_t sizes[] = {16, 64, 256, 1024, 8192};
    long n = scaled(10000000);
    double total = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t sz = sizes[s];
        for (long i = 0; i < n / 10 + 1; i++) { /* warm up */
            char *p = xmalloc(sz);
            *(volatile char *)p = (char)i;
            sink_ptr = p;
            free(p);
        }
        double t0 = now();
        for (long i = 0; i < n; i++) {
            char *p = malloc(sz);
            if (__builtin_expect(!p, 0)) oom(sz);
            *(volatile char *)p = (char)i;
            sink_ptr = p;
            free(p);
        }
        double dt = now() - t0;
        char key[64];
        snprintf(key, sizeof key, "ns_pair_%zu", sz);
        metric(key, dt * 1e9 / (double)n, "ns", "lower");
        total += dt;
    }
    metric("fastpath_total", total, "s", "lower");
}

/* --------------------------------------------------------------- 2. batch */
/* Allocate 1000 objects of mixed small sizes, then free them all; repeat.
 * Alternate rounds free in allocation order and in reverse order. */
#define BATCH 1000
static size_t small_mixed_size(uint64_t *r)
{
    uint64_t k = rng_below(r, 100);
    if (k < 50) return 8 + rng_below(r, 57);      /*  8..64   */
    if (k < 80) return 65 + rng_below(r, 192);    /* 65..256  */
    if (k < 95) return 257 + rng_below(r, 768);   /* 257..1024 */
    return 1025 + rng_below(r, 3072);             /* ..4096   */
}

static void wl_batch(void)
{
    uint64_t r = 42;
    size_t sizes[BATCH];
    void *objs[BATCH];
    for (int i = 0; i < BATCH; i++) sizes[i] = small_mixed_size(&r);
    long rounds = scaled(20000);
    double t0 = now();
    for (long k = 0; k < rounds; k++) {
        for (int i = 0; i < BATCH; i++) {
            objs[i] = malloc(sizes[i]);
            if (__builtin_expect(!objs[i], 0)) oom(sizes[i]);
            tag(objs[i], sizes[i]);
        }
        sink_ptr = objs[k % BATCH];
        if (k & 1) {
            for (int i = BATCH - 1; i >= 0; i--) { check(objs[i], sizes[i], "batch"); free(objs[i]); }
        } else {
            for (int i = 0; i < BATCH; i++) { check(objs[i], sizes[i], "batch"); free(objs[i]); }
        }
    }
    double dt = now() - t0;
    metric("ns_per_object", dt * 1e9 / ((double)rounds * BATCH), "ns", "lower");
}

/* -------------------------------------------------------------- 3. larson */
/* A server simulation: each of N "lineages" owns a slot array of live
 * objects (16..1024 B) and replaces random slots.  After its share of work a
 * thread frees a quarter of its slots, hands the array to a newly created
 * thread and exits; the successor keeps replacing (so it frees objects its
 * predecessor allocated).  Fixed total work, so wall time ~ 1/throughput. */
#define LARSON_SLOTS 2000
#define LARSON_GENS 16
struct lineage {
    void **slot;
    uint32_t *size;
    long ops_per_gen;
    int gens_left;
    int id;
    uint64_t seed;
};

static void *larson_worker(void *arg)
{
    struct lineage *L = arg;
    uint64_t r = L->seed + (uint64_t)L->gens_left * 0x1000193u;
    for (long i = 0; i < L->ops_per_gen; i++) {
        size_t k = rng_below(&r, LARSON_SLOTS);
        if (L->slot[k]) {
            check(L->slot[k], L->size[k], "larson");
            free(L->slot[k]);
        }
        size_t sz = 16 + rng_below(&r, 1009);
        void *p = malloc(sz);
        if (__builtin_expect(!p, 0)) oom(sz);
        tag(p, sz);
        L->slot[k] = p;
        L->size[k] = (uint32_t)sz;
    }
    if (--L->gens_left > 0) {
        /* retire: drop a quarter of the slots, hand the rest on */
        for (int i = 0; i < LARSON_SLOTS / 4; i++) {
            size_t k = rng_below(&r, LARSON_SLOTS);
            if (L->slot[k]) {
                check(L->slot[k], L->size[k], "larson");
                free(L->slot[k]);
                L->slot[k] = NULL;
            }
        }
        L->seed = rng_next(&r);
        pthread_t next;
        xpthread_create(&next, larson_worker, L);
        return (void *)(uintptr_t)next; /* main joins the chain */
    }
    for (int k = 0; k < LARSON_SLOTS; k++) {
        if (L->slot[k]) {
            check(L->slot[k], L->size[k], "larson");
            free(L->slot[k]);
            L->slot[k] = NULL;
        }
    }
    return NULL;
}

static void wl_larson(void)
{
    int t = nthreads > 0 ? nthreads : 4;
    long total_ops = scaled(20000000);
    struct lineage *L = xcalloc((size_t)t, sizeof *L);
    pthread_t *first = xcalloc((size_t)t, sizeof *first);
    for (int i = 0; i < t; i++) {
        L[i].slot = xcalloc(LARSON_SLOTS, sizeof(void *));
        L[i].size = xcalloc(LARSON_SLOTS, sizeof(uint32_t));
        L[i].ops_per_gen = total_ops / ((long)t * LARSON_GENS) + 1;
        L[i].gens_left = LARSON_GENS;
        L[i].id = i;
        L[i].seed = 1234567u + (uint64_t)i * 7919u;
    }
    double t0 = now();
    for (int i = 0; i < t; i++) xpthread_create(&first[i], larson_worker, &L[i]);
    for (int i = 0; i < t; i++) {
        pthread_t cur = first[i];
        for (;;) {
            void *ret = NULL;
            int rc = pthread_join(cur, &ret);
            if (rc) {
                fprintf(stderr, "pthread_join: %s\n", strerror(rc));
                exit(5);
            }
            if (!ret) break;
            cur = (pthread_t)(uintptr_t)ret;
        }
    }
    double dt = now() - t0;
    long done = L[0].ops_per_gen * LARSON_GENS * (long)t;
    metric("threads", t, "n", "info");
    metric("mops_per_s", (double)done / dt / 1e6, "Mops/s", "higher");
    for (int i = 0; i < t; i++) { free(L[i].slot); free(L[i].size); }
    free(L);
    free(first);
}

/* ------------------------------------------------------------ 4. prodcons */
/* xmalloc-style: one thread allocates, another frees, through a lock-free
 * single-producer single-consumer ring.  -t gives the number of pairs. */
#define RING 1024
#define RING_BATCH 32 /* publish head/tail every 32 objects */
struct ring {
    _Alignas(64) atomic_size_t head; /* written by producer */
    _Alignas(64) atomic_size_t tail; /* written by consumer */
    _Alignas(64) void *buf[RING];
    uint32_t sz[RING];
    long n;
    uint64_t seed;
};

static void *producer(void *arg)
{
    struct ring *q = arg;
    uint64_t r = q->seed;
    size_t head = 0, tail_seen = 0;
    for (long i = 0; i < q->n; i++) {
        size_t sz = 16 + rng_below(&r, 497); /* 16..512 */
        void *p = malloc(sz);
        if (__builtin_expect(!p, 0)) oom(sz);
        tag(p, sz);
        int spins = 0;
        while (head - tail_seen >= RING) {
            tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
            if (head - tail_seen >= RING) {
                if (++spins > 64) { sched_yield(); spins = 0; } else cpu_relax();
            }
        }
        q->buf[head % RING] = p;
        q->sz[head % RING] = (uint32_t)sz;
        head++;
        if (head % RING_BATCH == 0 || i == q->n - 1)
            atomic_store_explicit(&q->head, head, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct ring *q = arg;
    size_t tail = 0, head_seen = 0;
    for (long i = 0; i < q->n; i++) {
        int spins = 0;
        while (tail == head_seen) {
            head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
            if (tail == head_seen) {
                if (++spins > 64) { sched_yield(); spins = 0; } else cpu_relax();
            }
        }
        void *p = q->buf[tail % RING];
        size_t sz = q->sz[tail % RING];
        check(p, sz, "prodcons");
        free(p);
        tail++;
        if (tail % RING_BATCH == 0)
            atomic_store_explicit(&q->tail, tail, memory_order_release);
    }
    return NULL;
}

static void wl_prodcons(void)
{
    int pairs = nthreads > 0 ? nthreads : 1;
    long n = scaled(15000000) / pairs + 1;
    struct ring *q = aligned_alloc(64, sizeof(struct ring) * (size_t)pairs);
    if (!q) oom(sizeof(struct ring) * (size_t)pairs);
    memset(q, 0, sizeof(struct ring) * (size_t)pairs);
    pthread_t *th = xcalloc((size_t)pairs * 2, sizeof *th);
    double t0 = now();
    for (int i = 0; i < pairs; i++) {
        q[i].n = n;
        q[i].seed = 99u + (uint64_t)i;
        xpthread_create(&th[2 * i], producer, &q[i]);
        xpthread_create(&th[2 * i + 1], consumer, &q[i]);
    }
    for (int i = 0; i < 2 * pairs; i++) pthread_join(th[i], NULL);
    double dt = now() - t0;
    metric("ns_per_object", dt * 1e9 / ((double)n * pairs), "ns", "lower");
    free(th);
    free(q);
}

/* -------------------------------------------------- 5. false sharing */
/* thrash (active false sharing): each thread allocates a small object,
 * writes it many times, frees it, repeats.  An allocator that hands
 * concurrently running threads neighbouring objects makes them share a cache
 * line.
 * scratch (passive false sharing): the main thread allocates one small
 * object per thread in one burst; each thread frees "its" object and then
 * runs the same loop.  An allocator that recycles the freed object for the
 * freeing thread makes the threads share the main thread's cache line. */
#define FS_OBJ 8
struct fs_arg {
    char *initial; /* scratch: object from the main thread's burst */
    long iters, reps;
};

static void *fs_worker(void *arg)
{
    struct fs_arg *a = arg;
    if (a->initial) {
        check(a->initial, FS_OBJ, "scratch");
        free(a->initial);
    }
    unsigned long acc = 0;
    for (long i = 0; i < a->iters; i++) {
        volatile char *p = malloc(FS_OBJ);
        if (__builtin_expect(!p, 0)) oom(FS_OBJ);
        for (long j = 0; j < a->reps; j++)
            for (int k = 0; k < FS_OBJ; k++) p[k] = (char)(p[k] + 1);
        acc += (unsigned char)p[0];
        free((void *)p);
    }
    sink_val = acc;
    return NULL;
}

static void wl_falseshare(int scratch)
{
    int t = nthreads > 0 ? nthreads : 2;
    long iters = scaled(1000), reps = 20000;
    struct fs_arg *a = xcalloc((size_t)t, sizeof *a);
    pthread_t *th = xcalloc((size_t)t, sizeof *th);
    for (int i = 0; i < t; i++) {
        a[i].iters = iters;
        a[i].reps = reps;
        if (scratch) {
            a[i].initial = xmalloc(FS_OBJ);
            tag(a[i].initial, FS_OBJ);
        }
    }
    double t0 = now();
    for (int i = 0; i < t; i++) xpthread_create(&th[i], fs_worker, &a[i]);
    for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
    double dt = now() - t0;
    metric("threads", t, "n", "info");
    metric("ns_per_write", dt * 1e9 / ((double)iters * reps * FS_OBJ), "ns", "lower");
    free(a);
    free(th);
}

/* ------------------------------------------------------------- 6. realloc */
/* (a) a vector doubling from 16 B to 64 MiB, filling one byte per page of
 * each new half (as a vector being appended to would);
 * (b) random reallocs of a pool of 256 objects, sizes 1 B .. 256 KiB, mostly
 * small, checking contents survive. */
static void wl_realloc(void)
{
    const size_t cap = (size_t)64 << 20;
    long reps = scaled(20);
    double t0 = now();
    for (long k = 0; k < reps; k++) {
        size_t sz = 16;
        unsigned char *p = xmalloc(sz);
        tag(p, sz);
        while (sz < cap) {
            size_t nsz = sz * 2;
            unsigned char *q = realloc(p, nsz);
            if (!q) oom(nsz);
            check(q, sz, "realloc-double");
            for (size_t off = sz; off < nsz; off += 4096) q[off] = (unsigned char)off;
            tag(q, nsz);
            p = q;
            sz = nsz;
        }
        sink_ptr = p;
        free(p);
    }
    double dt = now() - t0;
    metric("us_per_doubling_to_64MiB", dt * 1e6 / (double)reps, "us", "lower");

    enum { POOL = 256 };
    void *slot[POOL] = {0};
    size_t size[POOL] = {0};
    uint64_t r = 7;
    long n = scaled(500000);
    t0 = now();
    for (long i = 0; i < n; i++) {
        size_t k = rng_below(&r, POOL);
        uint64_t c = rng_below(&r, 100);
        size_t nsz = c < 70 ? 1 + rng_below(&r, 512)
                   : c < 95 ? 513 + rng_below(&r, 16384 - 512)
                            : 16385 + rng_below(&r, 262144 - 16384);
        unsigned char *q = realloc(slot[k], nsz);
        if (!q) oom(nsz);
        if (slot[k]) {
            /* the first min(old, new) bytes must survive */
            unsigned char t = tag_of(size[k]);
            if (q[0] != t || (nsz >= size[k] && q[size[k] - 1] != t)) {
                fprintf(stderr, "realloc: contents lost (old %zu new %zu)\n", size[k], nsz);
                exit(4);
            }
        }
        memset(q, tag_of(nsz), nsz < 64 ? nsz : 64);
        q[nsz - 1] = tag_of(nsz);
        slot[k] = q;
        size[k] = nsz;
    }
    dt = now() - t0;
    metric("ns_per_random_realloc", dt * 1e9 / (double)n, "ns", "lower");
    for (int k = 0; k < POOL; k++) free(slot[k]);
}

/* ------------------------------------------------------- 7. fragmentation */
/* Rounds of allocation in shifting size bands.  Each round allocates about
 * 24 MiB of objects (fully written, so they count in RSS); one in eight is
 * long-lived, the rest are freed in random order at the end of the round.
 * Every fourth round frees a random half of the long-lived objects.  Reports
 * peak RSS against peak live bytes (bookkeeping arrays included as live). */
struct obj { void *p; size_t sz; };
static double live_bytes, peak_live;
static inline void live_add(double d)
{
    live_bytes += d;
    if (live_bytes > peak_live) peak_live = live_bytes;
}

static void wl_frag(void)
{
    static const size_t band_lo[] = {16, 64, 256, 1024, 4096, 16};
    static const size_t band_hi[] = {64, 256, 1024, 4096, 16384, 4096};
    const int nbands = 6;
    int rounds = 24;
    double per_round = (double)scaled(24L << 20);
    uint64_t r = 2024;

    size_t long_cap = 1 << 16, nlong = 0;
    struct obj *longl = xmalloc(long_cap * sizeof *longl);
    live_add((double)(long_cap * sizeof *longl));
    double t0 = now();
    for (int round = 0; round < rounds; round++) {
        int b = round % nbands;
        size_t lo = band_lo[b], hi = band_hi[b];
        size_t cnt = (size_t)(per_round / ((double)(lo + hi) / 2.0)) + 1;
        struct obj *shortl = xmalloc(cnt * sizeof *shortl);
        live_add((double)(cnt * sizeof *shortl));
        size_t nshort = 0;
        for (size_t i = 0; i < cnt; i++) {
            size_t sz = lo + rng_below(&r, hi - lo + 1);
            void *p = malloc(sz);
            if (!p) oom(sz);
            memset(p, 0x5a, sz);
            tag(p, sz);
            live_add((double)sz);
            if (rng_below(&r, 8) == 0) {
                if (nlong == long_cap) {
                    live_add(-(double)(long_cap * sizeof *longl));
                    long_cap *= 2;
                    longl = realloc(longl, long_cap * sizeof *longl);
                    if (!longl) oom(long_cap * sizeof *longl);
                    live_add((double)(long_cap * sizeof *longl));
                }
                longl[nlong++] = (struct obj){p, sz};
            } else {
                shortl[nshort++] = (struct obj){p, sz};
            }
        }
        /* free the short-lived ones in random order */
        for (size_t i = nshort; i > 1; i--) {
            size_t j = rng_below(&r, i);
            struct obj tmp = shortl[i - 1];
            shortl[i - 1] = shortl[j];
            shortl[j] = tmp;
        }
        for (size_t i = 0; i < nshort; i++) {
            check(shortl[i].p, shortl[i].sz, "frag");
            free(shortl[i].p);
            live_add(-(double)shortl[i].sz);
        }
        free(shortl);
        live_add(-(double)(cnt * sizeof *shortl));
        if (round % 4 == 3) {
            size_t keep = 0;
            for (size_t i = 0; i < nlong; i++) {
                if (rng_below(&r, 2)) {
                    check(longl[i].p, longl[i].sz, "frag");
                    free(longl[i].p);
                    live_add(-(double)longl[i].sz);
                } else {
                    longl[keep++] = longl[i];
                }
            }
            nlong = keep;
        }
    }
    double dt = now() - t0;
    double rss_end = cur_rss_bytes();
    for (size_t i = 0; i < nlong; i++) {
        check(longl[i].p, longl[i].sz, "frag");
        free(longl[i].p);
    }
    free(longl);
    double peak_rss = peak_rss_bytes();
    metric("seconds", dt, "s", "lower");
    metric("peak_live_MiB", peak_live / 1048576.0, "MiB", "info");
    metric("peak_rss_MiB", peak_rss / 1048576.0, "MiB", "lower");
    metric("rss_over_live", peak_rss / peak_live, "x", "lower");
    metric("rss_at_end_MiB", rss_end / 1048576.0, "MiB", "lower");
}

/* --------------------------------------------------------------- 8. large */
/* Churn of 64 KiB .. 4 MiB blocks (log-uniform), around the usual mmap
 * threshold: 32 live blocks, replace a random one, write one byte per page. */
static void wl_large(void)
{
    enum { SLOTS = 32 };
    void *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    uint64_t r = 31337;
    long n = scaled(20000);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        size_t k = rng_below(&r, SLOTS);
        if (slot[k]) {
            check(slot[k], size[k], "large");
            free(slot[k]);
        }
        size_t base = (size_t)65536 << rng_below(&r, 6);
        size_t sz = base + rng_below(&r, base);
        unsigned char *p = malloc(sz);
        if (!p) oom(sz);
        for (size_t off = 0; off < sz; off += 4096) p[off] = (unsigned char)off;
        tag(p, sz);
        slot[k] = p;
        size[k] = sz;
    }
    double dt = now() - t0;
    for (int k = 0; k < SLOTS; k++) free(slot[k]);
    metric("us_per_op", dt * 1e6 / (double)n, "us", "lower");
}

/* ------------------------------------------------------------- 9. threads */
/* Many threads that each use 24 size classes (16 B .. 48 KiB, 64 blocks of
 * each, all freed again) and then sit idle, as the threads of a pool do:
 * RSS per idle thread, and what stays after they exit (64 KiB stacks, so
 * the stacks add little and the same for every allocator). */
static pthread_barrier_t thr_idle, thr_done;

static size_t thr_class_size(int k)
{
    size_t s = (size_t)16 << (k / 2);
    return k & 1 ? s + s / 2 : s;
}

static void *thr_worker(void *arg)
{
    (void)arg;
    void *v[64];
    for (int k = 0; k < 24; k++) {
        for (int i = 0; i < 64; i++) {
            v[i] = xmalloc(thr_class_size(k));
            memset(v[i], 1, 16);
        }
        for (int i = 0; i < 64; i++) free(v[i]);
    }
    pthread_barrier_wait(&thr_idle);
    pthread_barrier_wait(&thr_done);
    return NULL;
}

static void wl_threads(void)
{
    int n = (int)scaled(1000);
    if (n < 50) n = 50;
    pthread_t *t = xmalloc((size_t)n * sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 << 10);
    pthread_barrier_init(&thr_idle, NULL, (unsigned)n + 1);
    pthread_barrier_init(&thr_done, NULL, (unsigned)n + 1);
    double before = cur_rss_bytes();
    double t0 = now();
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], &attr, thr_worker, NULL) != 0) { perror("pthread_create"); exit(1); }
    pthread_barrier_wait(&thr_idle);
    double idle = cur_rss_bytes();
    pthread_barrier_wait(&thr_done);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    double dt = now() - t0;
    double after = cur_rss_bytes();
    free(t);
    metric("threads", n, "", "info");
    metric("seconds", dt, "s", "lower");
    metric("rss_per_idle_thread_KiB", (idle - before) / n / 1024.0, "KiB", "lower");
    metric("rss_after_exit_MiB", (after - before) / 1048576.0, "MiB", "lower");
}

/* ------------------------------------------------------------- 10. freeall */
/* Allocate about 230 MB of mixed small blocks (16 .. 1016 B), free them all,
 * then keep calling the allocator lightly for 6 s (2,000 mixed blocks every
 * 100 ms): the share of what the peak added that is still resident at once
 * and after the 6 s (longer than swiftmalloc's 5 s decay time). */
static void wl_freeall(void)
{
    long n = scaled(400000);
    void **v = xmalloc((size_t)n * sizeof *v);
    memset(v, 0, (size_t)n * sizeof *v);
    double start = cur_rss_bytes();
    double t0 = now();
    for (long i = 0; i < n; i++) {
        size_t sz = 16 + ((size_t)i * 7919) % 1000;
        v[i] = xmalloc(sz);
        memset(v[i], 1, sz);
    }
    double peak = cur_rss_bytes();
    for (long i = 0; i < n; i++) free(v[i]);
    double dt = now() - t0;
    double freed = cur_rss_bytes();
    for (int round = 0; round < 60; round++) {
        usleep(100 * 1000);
        void *w[2000];
        for (int i = 0; i < 2000; i++) w[i] = xmalloc(16 + (size_t)(i * 13) % 1000);
        for (int i = 0; i < 2000; i++) free(w[i]);
    }
    double later = cur_rss_bytes();
    free(v);
    double added = peak - start > 1 ? peak - start : 1;
    metric("seconds", dt, "s", "lower");
    metric("rss_added_MiB", added / 1048576.0, "MiB", "info");
    metric("kept_after_free_pct", 100.0 * (freed - start) / added, "%", "lower");
    metric("kept_after_6s_pct", 100.0 * (later - start) / added, "%", "lower");
}

/* ---------------------------------------------------------------- main */
static void usage(void)
{
    fprintf(stderr,
            "usage: wl NAME [-s SCALE] [-t THREADS]\n"
            "NAME: fastpath batch larson prodcons thrash scratch realloc frag large threads freeall\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    const char *name = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) nthreads = atoi(argv[++i]);
        else usage();
    }
    if (!(scale > 0)) usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    report_alloclib();
    double t0 = now();
    if (!strcmp(name, "fastpath")) wl_fastpath();
    else if (!strcmp(name, "batch")) wl_batch();
    else if (!strcmp(name, "larson")) wl_larson();
    else if (!strcmp(name, "prodcons")) wl_prodcons();
    else if (!strcmp(name, "thrash")) wl_falseshare(0);
    else if (!strcmp(name, "scratch")) wl_falseshare(1);
    else if (!strcmp(name, "realloc")) wl_realloc();
    else if (!strcmp(name, "frag")) wl_frag();
    else if (!strcmp(name, "large")) wl_large();
    else if (!strcmp(name, "threads")) wl_threads();
    else if (!strcmp(name, "freeall")) wl_freeall();
    else usage();
    metric("workload_seconds", now() - t0, "s", "lower");
    return 0;
}
