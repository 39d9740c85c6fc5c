/*
 * live.c: the live page of SWIFTMALLOC_LIVE=1 (layout and contract in
 * swm_live.h): made by the constructor when the environment asks for it,
 * written by API/Live.swift on slow paths between swm_live_begin and
 * swm_live_end, unlinked by the destructor. Raw system calls only; nothing
 * here allocates.
 *
 * fork: the child stops writing its parent's page at once (the mapping is
 * shared) and makes a page of its own at its first slow path, so a child
 * that only execs leaves no file behind. A process that ends without exit
 * handlers (_exit, a fatal signal) leaves its page; the next process with
 * the same pid and owner replaces it, and `swiftmalloc top` reports a page
 * whose process is gone.
 */
#include "swm_shim.h"
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

/* 0: off; 1: publishing; 2: a fork child that will make its page at its next slow path. */
__attribute__((visibility("hidden"))) int swm_live_enabled;
static swm_live_page_t *swm_live_page;
static _Atomic int swm_live_writing;     /* one writer at a time; others skip */
static uint64_t swm_live_last_totals;    /* ms of the last totals update (under swm_live_writing) */
static long swm_live_owner;              /* the pid whose page swm_live_path is */
static char swm_live_path[64];

/* Implemented in Swift (API/Live.swift): every class and the totals. */
extern void swmcore_live_update_all(void);

#define SWM_LIVE_PAGE_BYTES ((sizeof(swm_live_page_t) + 4095u) & ~(size_t)4095u)

/* SWIFTMALLOC_LIVE from environ (never getenv): 1 on, 0 or absent off; any
 * other value is reported and ignored. */
static int swm_live_requested(void) {
  static const char name[] = "SWIFTMALLOC_LIVE=";
  char **env = swm_environ();
  if (env == NULL) return 0;
  for (; *env != NULL; env++) {
    const char *e = *env;
    size_t k = 0;
    while (name[k] != 0 && e[k] == name[k]) k++;
    if (name[k] != 0) continue;
    if (e[k] == '1' && e[k + 1] == 0) return 1;
    if (!(e[k] == '0' && e[k + 1] == 0))
      swm_warn("ignoring SWIFTMALLOC_LIVE=", e + k, " (expected 1 or 0)");
    return 0;
  }
  return 0;
}

static char *swm_live_put_num(char *p, unsigned long v) {
  char digits[24];
  int n = 0;
  do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v != 0);
  while (n > 0) *p++ = digits[--n];
  return p;
}

/* /dev/shm/swiftmalloc-<uid>-<pid>, mode 0400, mapped shared; 0 on success. */
static int swm_live_create(void) {
  long pid = SWM_SYSCALL(SYS_getpid, 0, 0, 0);
  long uid = SWM_SYSCALL(SYS_getuid, 0, 0, 0);
  char *p = swm_live_path;
  for (const char *s = SWM_LIVE_PATH_PREFIX; *s; s++) *p++ = *s;
  p = swm_live_put_num(p, (unsigned long)uid);
  *p++ = '-';
  p = swm_live_put_num(p, (unsigned long)pid);
  *p = 0;
  long fd = -1;
  for (int attempt = 0; attempt < 2; attempt++) {
    fd = swm_raw_syscall6(SYS_openat, AT_FDCWD, (long)swm_live_path,
                          O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400, 0, 0);
    if (!swm_sys_failed(fd) || fd != -EEXIST) break;
    /* left by an earlier process with this pid that had no exit handlers:
     * replaced only when it is a plain file of ours */
    struct stat st;
    if (swm_sys_failed(swm_raw_syscall6(SYS_newfstatat, AT_FDCWD, (long)swm_live_path, (long)&st,
                                        AT_SYMLINK_NOFOLLOW, 0, 0))
        || !S_ISREG(st.st_mode) || (long)st.st_uid != uid)
      break;
    SWM_SYSCALL(SYS_unlinkat, AT_FDCWD, swm_live_path, 0);
  }
  if (swm_sys_failed(fd)) {
    swm_warn("SWIFTMALLOC_LIVE=1: cannot create ", swm_live_path, "; no live page for this process");
    return -1;
  }
  void *page = NULL;
  if (!swm_sys_failed(SWM_SYSCALL(SYS_ftruncate, fd, SWM_LIVE_PAGE_BYTES, 0))) {
    long r = swm_raw_syscall6(SYS_mmap, 0, (long)SWM_LIVE_PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (!swm_sys_failed(r)) page = (void *)r;
  }
  SWM_SYSCALL(SYS_close, fd, 0, 0);
  if (page == NULL) {
    SWM_SYSCALL(SYS_unlinkat, AT_FDCWD, swm_live_path, 0);
    swm_warn("SWIFTMALLOC_LIVE=1: cannot map ", swm_live_path, "; no live page for this process");
    return -1;
  }
  swm_live_page_t *live = page;  /* fresh from ftruncate: all zero */
  live->version = SWM_LIVE_VERSION;
  live->bytes = sizeof(swm_live_page_t);
  live->pid = (uint64_t)pid;
  live->started_ms = swm_now_ms();
  live->class_count = SWM_NUM_CLASSES;
  for (uint32_t c = 1; c < SWM_NUM_CLASSES && c < SWM_LIVE_MAX_CLASSES; c++) {
    live->classes[c].size = swm_class_to_size(c);
    live->classes[c].per_span = swm_class_span_objects(c);
  }
  __atomic_store_n(&live->magic, SWM_LIVE_MAGIC, __ATOMIC_RELEASE);  /* last: a reader checks it first */
  swm_live_page = live;
  swm_live_owner = pid;
  return 0;
}

swm_live_page_t *swm_live_begin(int *totals) {
  int state = __atomic_load_n(&swm_live_enabled, __ATOMIC_RELAXED);
  if (state == 0 || atomic_exchange_explicit(&swm_live_writing, 1, memory_order_acquire) != 0) return NULL;
  if (state == 2) {  /* a fork child's first slow path */
    if (swm_live_create() != 0) {
      __atomic_store_n(&swm_live_enabled, 0, __ATOMIC_RELAXED);
      atomic_store_explicit(&swm_live_writing, 0, memory_order_release);
      return NULL;
    }
    __atomic_store_n(&swm_live_enabled, 1, __ATOMIC_RELAXED);
    *totals = 1;
  }
  swm_live_page_t *page = swm_live_page;
  uint64_t now = swm_now_ms();
  int only_when_due = *totals < 0;
  *totals = *totals > 0 || now != swm_live_last_totals;
  if (only_when_due && !*totals) {
    atomic_store_explicit(&swm_live_writing, 0, memory_order_release);
    return NULL;
  }
  if (*totals) {
    swm_live_last_totals = now;
    page->updated_ms = now;
  }
  __atomic_store_n(&page->seq, page->seq + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  return page;
}

void swm_live_end(swm_live_page_t *page) {
  __atomic_store_n(&page->seq, page->seq + 1, __ATOMIC_RELEASE);
  atomic_store_explicit(&swm_live_writing, 0, memory_order_release);
}

/* The child must not write the parent's page: unmap it here, make its own later. */
static void swm_live_fork_child(void) {
  if (__atomic_load_n(&swm_live_enabled, __ATOMIC_RELAXED) == 0) return;
  if (swm_live_page != NULL) swm_sys_munmap(swm_live_page, SWM_LIVE_PAGE_BYTES);
  swm_live_page = NULL;
  atomic_store_explicit(&swm_live_writing, 0, memory_order_relaxed);
  __atomic_store_n(&swm_live_enabled, 2, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void swm_live_init(void) {
  if (!swm_live_requested() || swm_live_create() != 0) return;
  pthread_atfork(NULL, NULL, swm_live_fork_child);  /* may allocate: no lock is held here */
  __atomic_store_n(&swm_live_enabled, 1, __ATOMIC_RELAXED);
  swmcore_live_update_all();
}

__attribute__((destructor)) static void swm_live_fini(void) {
  if (__atomic_load_n(&swm_live_enabled, __ATOMIC_RELAXED) != 1) return;
  __atomic_store_n(&swm_live_enabled, 0, __ATOMIC_RELAXED);
  if (swm_live_owner == SWM_SYSCALL(SYS_getpid, 0, 0, 0)) SWM_SYSCALL(SYS_unlinkat, AT_FDCWD, swm_live_path, 0);
}
