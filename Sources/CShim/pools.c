/*
 * pools.c: state and formatting for the pool family (see swm_pool_shim.h).
 */
#include "swm_shim.h"

__thread unsigned swm_pool_thread_slot __attribute__((tls_model("initial-exec"), visibility("hidden")));

static swm_pool_registry_t swm_pool_registry_storage;
static _Atomic unsigned swm_pool_next_slot;

unsigned swm_pool_assign_slot(void) {
  unsigned slot = atomic_fetch_add_explicit(&swm_pool_next_slot, 1, memory_order_relaxed) + 1;
  if (slot == 0) slot = 1;
  swm_pool_thread_slot = slot;
  return slot;
}

swm_pool_registry_t *swm_pool_registry(void) { return &swm_pool_registry_storage; }

/* Appends s left-aligned in a field of width w (always one space after). */
static size_t swm_pool_put_str(char *buf, size_t at, size_t cap, const char *s, size_t w) {
  size_t n = 0;
  while (s[n] != 0 && at < cap) buf[at++] = s[n++];
  while (n < w && at < cap) { buf[at++] = ' '; n++; }
  if (at < cap) buf[at++] = ' ';
  return at;
}

/* Appends v right-aligned in a field of width w, then one space. */
static size_t swm_pool_put_num(char *buf, size_t at, size_t cap, size_t v, size_t w) {
  char digits[24];
  size_t n = 0;
  do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v != 0);
  for (size_t pad = n; pad < w && at < cap; pad++) buf[at++] = ' ';
  while (n > 0 && at < cap) buf[at++] = digits[--n];
  if (at < cap) buf[at++] = ' ';
  return at;
}

void swm_pool_slabinfo_line(int fd, const char *name, size_t active, size_t total,
                            size_t objsize, size_t perslab, size_t pages) {
  char buf[160];
  size_t n = 0, cap = sizeof buf - 1;
  if (name == NULL) {
    static const char header[] =
        "# name                 <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>\n";
    swm_sys_write(fd, header, sizeof header - 1);
    return;
  }
  n = swm_pool_put_str(buf, n, cap, name, 22);
  n = swm_pool_put_num(buf, n, cap, active, 13);
  n = swm_pool_put_num(buf, n, cap, total, 10);
  n = swm_pool_put_num(buf, n, cap, objsize, 9);
  n = swm_pool_put_num(buf, n, cap, perslab, 12);
  n = swm_pool_put_num(buf, n, cap, pages, 14);
  if (n > 0) n--; /* the last field's trailing space */
  buf[n++] = '\n';
  swm_sys_write(fd, buf, n);
}

void swm_pool_leak_warning(const char *before, const char *name, size_t count, const char *after) {
  char buf[200];
  size_t n = 0, cap = sizeof buf - 1;
  static const char prefix[] = "swiftmalloc: ";
  for (const char *s = prefix; *s && n < cap; s++) buf[n++] = *s;
  for (const char *s = before; *s && n < cap; s++) buf[n++] = *s;
  for (const char *s = name; *s && n < cap; s++) buf[n++] = *s;
  for (const char *s = after; *s && n < cap; s++) buf[n++] = *s;
  n = swm_pool_put_num(buf, n, cap, count, 0);
  buf[n - 1] = '\n';
  swm_sys_write(2, buf, n);
}
