/*
 * os.c: the two OS services that need more than one system call: the clock
 * (read through the vDSO, found without libc) and the guard-page budget of
 * secure mode. See swm_shim.h for the contracts.
 */
#include "swm_shim.h"
#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>

int swm_secure_execution(void) { return getauxval(AT_SECURE) != 0; }

size_t swm_resident_bytes(const void *p, size_t len) {
  unsigned char vec[256];
  size_t resident = 0;
  uintptr_t at = (uintptr_t)p;
  while (len > 0) {
    size_t pages = (len + 4095) / 4096;
    if (pages > sizeof vec) pages = sizeof vec;
    if (swm_sys_failed(SWM_SYSCALL(SYS_mincore, at, pages * 4096, vec))) return resident;
    for (size_t i = 0; i < pages; i++) resident += (vec[i] & 1) * 4096u;
    size_t step = pages * 4096 < len ? pages * 4096 : len;
    at += step;
    len -= step;
  }
  return resident;
}

/* MARK: clock ----------------------------------------------------------- */

typedef int (*swm_clock_fn)(clockid_t, struct timespec *);
/* NULL: not looked up yet; swm_clock_none: no vDSO, use the system call. */
static _Atomic(swm_clock_fn) swm_vdso_clock;
static int swm_clock_none(clockid_t id, struct timespec *t) {
  return (int)SWM_SYSCALL(SYS_clock_gettime, id, t, 0);
}

/* The vDSO is an ELF image the kernel maps into every process; its dynamic
 * symbol table names clock_gettime. getauxval reads a table libc filled at
 * start (no allocation, no lock). */
static swm_clock_fn swm_vdso_lookup(void) {
#if defined(__x86_64__)
  static const char name[] = "__vdso_clock_gettime";
#elif defined(__aarch64__)
  static const char name[] = "__kernel_clock_gettime";
#else
  static const char name[] = "";
#endif
  uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
  if (base == 0 || name[0] == 0) return swm_clock_none;
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shoff == 0) return swm_clock_none;
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
  uintptr_t bias = base;
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD) { bias = base + ph[i].p_offset - ph[i].p_vaddr; break; }
  const Elf64_Shdr *sh = (const Elf64_Shdr *)(base + eh->e_shoff);
  for (int i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_entsize == 0 || sh[i].sh_link >= eh->e_shnum) continue;
    const Elf64_Sym *sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
    const char *strings = (const char *)(base + sh[sh[i].sh_link].sh_offset);
    size_t count = sh[i].sh_size / sh[i].sh_entsize;
    for (size_t k = 0; k < count; k++)
      if (sym[k].st_value != 0 && ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC && strcmp(strings + sym[k].st_name, name) == 0)
        return (swm_clock_fn)(bias + sym[k].st_value);
  }
  return swm_clock_none;
}

uint64_t swm_clock_ms(int precise) {
  swm_clock_fn fn = atomic_load_explicit(&swm_vdso_clock, memory_order_acquire);
  if (__builtin_expect(fn == NULL, 0)) {
    fn = swm_vdso_lookup();  /* idempotent: racing threads find the same */
    atomic_store_explicit(&swm_vdso_clock, fn, memory_order_release);
  }
  struct timespec t = {0, 0};
  int e = errno;  /* the vDSO may fall back to a system call that sets nothing, but be sure */
  fn(precise ? CLOCK_MONOTONIC : CLOCK_MONOTONIC_COARSE, &t);
  errno = e;
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* MARK: guard pages --------------------------------------------------------- */

#define SWM_MADV_GUARD_INSTALL 102
#define SWM_MADV_GUARD_REMOVE 103

/* 0: not probed; 1: MADV_GUARD_* works (guards cost no mapping);
 * 2: mprotect fallback, spending from swm_guard_budget. */
static _Atomic int swm_guard_mode;
/* Guard sites the mprotect fallback may still create. Each may split a
 * mapping into three: budget = max_map_count / 8 sites keeps guards under
 * 3/8 of the limit, leaving the rest to the program and our own mappings. */
static _Atomic long swm_guard_budget;
static _Atomic int swm_guard_warned;

/* vm.max_map_count from /proc (raw open/read/close), 65530 when unreadable. */
static long swm_max_map_count(void) {
  char buf[32];
  long fd = SWM_SYSCALL(SYS_openat, AT_FDCWD, "/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  if (swm_sys_failed(fd)) return 65530;
  long n = SWM_SYSCALL(SYS_read, fd, buf, sizeof buf - 1);
  SWM_SYSCALL(SYS_close, fd, 0, 0);
  long v = 0;
  for (long i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
  return v > 0 ? v : 65530;
}

/* Decides on first use whether guards cost mappings (one probe of
 * MADV_GUARD_INSTALL) and reads the budget. */
static void swm_guard_init(void) {
  if (atomic_load_explicit(&swm_guard_mode, memory_order_acquire) != 0) return;
  int mode = 2;
  void *probe = swm_sys_mmap(4096);
  if (probe != NULL) {
    if (swm_sys_madvise(probe, 4096, SWM_MADV_GUARD_INSTALL) == 0) mode = 1;
    swm_sys_munmap(probe, 4096);
  }
  atomic_store_explicit(&swm_guard_budget, swm_max_map_count() / 8, memory_order_relaxed);
  atomic_store_explicit(&swm_guard_mode, mode, memory_order_release);
}

int swm_guard_install(void *p, size_t len) {
  int mode = atomic_load_explicit(&swm_guard_mode, memory_order_acquire);
  if (mode == 0) { swm_guard_init(); mode = atomic_load_explicit(&swm_guard_mode, memory_order_acquire); }
  if (mode == 1) return swm_sys_madvise(p, len, SWM_MADV_GUARD_INSTALL) == 0;
  if (atomic_fetch_sub_explicit(&swm_guard_budget, 1, memory_order_relaxed) <= 0) {
    atomic_fetch_add_explicit(&swm_guard_budget, 1, memory_order_relaxed);
    if (atomic_exchange_explicit(&swm_guard_warned, 1, memory_order_relaxed) == 0)
      swm_warn("secure mode: guard pages would exhaust vm.max_map_count on this kernel (no MADV_GUARD_INSTALL); ",
               "new spans and mmap blocks get no guard page", NULL);
    return 0;
  }
  if (swm_sys_mprotect(p, len, PROT_NONE) == 0) return 1;
  atomic_fetch_add_explicit(&swm_guard_budget, 1, memory_order_relaxed);
  return 0;
}

int swm_guard_is_free(void) {
  if (atomic_load_explicit(&swm_guard_mode, memory_order_acquire) == 0) swm_guard_init();
  return atomic_load_explicit(&swm_guard_mode, memory_order_acquire) == 1;
}

int swm_guard_install_free(void *p, size_t len) {
  return swm_guard_is_free() && swm_sys_madvise(p, len, SWM_MADV_GUARD_INSTALL) == 0;
}

void swm_guard_remove_free(void *p, size_t len) { swm_sys_madvise(p, len, SWM_MADV_GUARD_REMOVE); }

int swm_guard_remove(void *p, size_t len) {
  if (atomic_load_explicit(&swm_guard_mode, memory_order_acquire) == 1)
    return swm_sys_madvise(p, len, SWM_MADV_GUARD_REMOVE);
  if (swm_sys_mprotect(p, len, PROT_READ | PROT_WRITE) != 0) return -1;
  atomic_fetch_add_explicit(&swm_guard_budget, 1, memory_order_relaxed);
  return 0;
}

void swm_guard_unmapped(long sites) {
  if (atomic_load_explicit(&swm_guard_mode, memory_order_acquire) == 2)
    atomic_fetch_add_explicit(&swm_guard_budget, sites, memory_order_relaxed);
}
