/*
 * cxx.c: the replaceable C++ allocation functions ([new.delete], C++17),
 * written in C under their Itanium-ABI names so that the library still links
 * only libc. Preloaded, they replace libstdc++'s for the whole process;
 * linked from libswiftmalloc.a, a C++ program that only uses new and delete
 * reaches swiftmalloc through them.
 *
 *   new, new[]                 swmcore_malloc; never NULL: while the memory
 *                              cannot be had, the installed new_handler is
 *                              called, and without one std::bad_alloc is thrown
 *   new(align_val_t)           the same through swmcore_aligned_alloc; an
 *                              alignment that is not a power of two throws
 *                              bad_alloc at once (as libstdc++)
 *   nothrow forms              the same loop, but NULL where the others throw
 *   delete, delete[]           swmcore_free (NULL does nothing in every form)
 *   sized delete               swmcore_free_sized: the size must be one the
 *                              block can have been allocated with
 *   aligned delete             the pointer must be aligned as claimed
 *                              ("operator delete(): alignment mismatch for");
 *                              sized aligned delete then checks the size as
 *                              free_aligned_sized does
 *
 * std::get_new_handler and std::__throw_bad_alloc come from libstdc++ when
 * the process has it. The shared library references them weakly: in a C
 * program they are absent, no handler can have been installed, and a new
 * that cannot be served writes "swiftmalloc: operator new(): out of memory"
 * and aborts (C cannot catch). libswiftmalloc.a references __throw_bad_alloc
 * strongly: only a C++ program pulls this object out of the archive, and a
 * weak reference would not pull libstdc++.a's copy into a -static link.
 *
 * A nothrow new calls the handler too, as the standard says. C cannot catch:
 * a handler that throws from inside a nothrow new is not turned into NULL;
 * the exception leaves this frame (compiled with unwind tables) and meets
 * the caller's noexcept, which usually means std::terminate.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "swm_shim.h"

#define SWM_EXPORT __attribute__((visibility("default")))
/* A function under its mangled name: the declaration carries the name. */
#define SWM_CXX(mangled, ret, fname, params) \
  ret fname params __asm__(mangled);         \
  SWM_EXPORT ret fname params
#define LIKELY(x) __builtin_expect(!!(x), 1)

_Static_assert(__builtin_types_compatible_p(size_t, unsigned long),
               "the mangled names below spell size_t as unsigned long (m)");

extern void *swmcore_malloc(size_t);
extern void *swmcore_aligned_alloc(size_t, size_t);
extern void swmcore_free(void *);
extern void swmcore_free_sized(void *, size_t);
extern void swmcore_free_aligned_sized(void *, size_t, size_t);

/* MARK: libstdc++'s side (std::get_new_handler, std::__throw_bad_alloc) */

typedef void (*swm_new_handler)(void);
extern swm_new_handler swm_cxx_get_new_handler(void) __asm__("_ZSt15get_new_handlerv") __attribute__((weak));
#ifdef SWM_ARCHIVE
extern void swm_cxx_throw_bad_alloc(void) __asm__("_ZSt17__throw_bad_allocv") __attribute__((noreturn));
#else
extern void swm_cxx_throw_bad_alloc(void) __asm__("_ZSt17__throw_bad_allocv") __attribute__((weak, noreturn));
#endif

/* Throws std::bad_alloc; in a process without libstdc++, says so and aborts. */
__attribute__((noreturn, cold)) static void bad_alloc(void) {
#ifndef SWM_ARCHIVE
  if (!swm_cxx_throw_bad_alloc) {
    swm_line_t line = {.n = 0};
    swm_line_str(&line, "swiftmalloc: operator new(): out of memory", 0);
    swm_line_write(&line, 2);
    abort();
  }
#endif
  swm_cxx_throw_bad_alloc();
}

static inline int is_power_of_two(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

/* The failure path of every new: the handler loop. `align` 0 means plain
 * malloc. Returns NULL only when `nothrow`. */
__attribute__((noinline, cold)) static void *new_retry(size_t n, size_t align, int nothrow) {
  if (align != 0 && !is_power_of_two(align)) {
    if (nothrow) return NULL;
    bad_alloc();
  }
  for (;;) {
    swm_new_handler h = swm_cxx_get_new_handler ? swm_cxx_get_new_handler() : NULL;
    if (!h) {
      if (nothrow) return NULL;
      bad_alloc();
    }
    h();
    void *p = align ? swmcore_aligned_alloc(align, n) : swmcore_malloc(n);
    if (p) return p;
  }
}

static inline void *new_plain(size_t n, int nothrow) {
  void *p = swmcore_malloc(n);
  return LIKELY(p) ? p : new_retry(n, 0, nothrow);
}

static inline void *new_aligned(size_t n, size_t align, int nothrow) {
  void *p = is_power_of_two(align) ? swmcore_aligned_alloc(align, n) : NULL;
  return LIKELY(p) ? p : new_retry(n, align, nothrow);
}

/* The alignment an aligned delete claims must be a power of two the pointer
 * has; NULL was checked by the caller. */
static inline void check_alignment(void *p, size_t align, const char *call) {
  if (!is_power_of_two(align) || ((uintptr_t)p & (align - 1)) != 0)
    swm_fatal(call, "alignment mismatch for", p);
}

/* MARK: new */

SWM_CXX("_Znwm", void *, swm_cxx_new, (size_t n)) { return new_plain(n, 0); }
SWM_CXX("_Znam", void *, swm_cxx_new_array, (size_t n)) { return new_plain(n, 0); }
SWM_CXX("_ZnwmRKSt9nothrow_t", void *, swm_cxx_new_nothrow, (size_t n, const void *tag)) {
  (void)tag;
  return new_plain(n, 1);
}
SWM_CXX("_ZnamRKSt9nothrow_t", void *, swm_cxx_new_array_nothrow, (size_t n, const void *tag)) {
  (void)tag;
  return new_plain(n, 1);
}
SWM_CXX("_ZnwmSt11align_val_t", void *, swm_cxx_new_aligned, (size_t n, size_t a)) { return new_aligned(n, a, 0); }
SWM_CXX("_ZnamSt11align_val_t", void *, swm_cxx_new_array_aligned, (size_t n, size_t a)) { return new_aligned(n, a, 0); }
SWM_CXX("_ZnwmSt11align_val_tRKSt9nothrow_t", void *, swm_cxx_new_aligned_nothrow,
        (size_t n, size_t a, const void *tag)) {
  (void)tag;
  return new_aligned(n, a, 1);
}
SWM_CXX("_ZnamSt11align_val_tRKSt9nothrow_t", void *, swm_cxx_new_array_aligned_nothrow,
        (size_t n, size_t a, const void *tag)) {
  (void)tag;
  return new_aligned(n, a, 1);
}

/* MARK: delete (one family for delete, one for delete[]) */

#define DELETE_FAMILY(name, kind, call)                                                          \
  SWM_CXX("_Z" kind "Pv", void, swm_cxx_##name, (void *p)) { swmcore_free(p); }                  \
  SWM_CXX("_Z" kind "Pvm", void, swm_cxx_##name##_sized, (void *p, size_t n)) {                  \
    swmcore_free_sized(p, n);                                                                    \
  }                                                                                              \
  SWM_CXX("_Z" kind "PvRKSt9nothrow_t", void, swm_cxx_##name##_nothrow, (void *p, const void *t)) { \
    (void)t;                                                                                     \
    swmcore_free(p);                                                                             \
  }                                                                                              \
  SWM_CXX("_Z" kind "PvSt11align_val_t", void, swm_cxx_##name##_aligned, (void *p, size_t a)) {  \
    if (!p) return;                                                                              \
    check_alignment(p, a, call);                                                                 \
    swmcore_free(p);                                                                             \
  }                                                                                              \
  SWM_CXX("_Z" kind "PvmSt11align_val_t", void, swm_cxx_##name##_sized_aligned,                  \
          (void *p, size_t n, size_t a)) {                                                       \
    if (!p) return;                                                                              \
    check_alignment(p, a, call);                                                                 \
    swmcore_free_aligned_sized(p, a, n);                                                         \
  }                                                                                              \
  SWM_CXX("_Z" kind "PvSt11align_val_tRKSt9nothrow_t", void, swm_cxx_##name##_aligned_nothrow,   \
          (void *p, size_t a, const void *t)) {                                                  \
    (void)t;                                                                                     \
    if (!p) return;                                                                              \
    check_alignment(p, a, call);                                                                 \
    swmcore_free(p);                                                                             \
  }

DELETE_FAMILY(delete, "dl", "operator delete()")
DELETE_FAMILY(delete_array, "da", "operator delete[]()")
