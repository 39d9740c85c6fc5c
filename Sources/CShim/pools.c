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

void swm_pool_slabinfo_line(int fd, const char *name, size_t active, size_t total,
                            size_t objsize, size_t perslab, size_t pages) {
  swm_line_t line = {.n = 0};
  if (name == NULL) {
    swm_line_str(&line, "# name                 <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>", 0);
    swm_line_write(&line, fd);
    return;
  }
  swm_line_str(&line, name, 22);
  swm_line_str(&line, " ", 0);
  swm_line_num(&line, active, 10, 13);
  swm_line_num(&line, total, 10, 11);
  swm_line_num(&line, objsize, 10, 10);
  swm_line_num(&line, perslab, 10, 13);
  swm_line_num(&line, pages, 10, 15);
  swm_line_write(&line, fd);
}

void swm_pool_leak_warning(const char *before, const char *name, size_t count, const char *after) {
  swm_line_t line = {.n = 0};
  swm_line_str(&line, "swiftmalloc: ", 0);
  swm_line_str(&line, before, 0);
  swm_line_str(&line, name, 0);
  swm_line_str(&line, after, 0);
  swm_line_num(&line, count, 10, 0);
  swm_line_write(&line, 2);
}
