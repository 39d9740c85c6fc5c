/* reader.c: the seqlock reader of the live page (see swm_live_reader.h). */
#include "swm_live_reader.h"
#include <sched.h>

int swm_live_snapshot(const void *mapped, size_t mapped_bytes, swm_live_page_t *out) {
  const swm_live_page_t *page = mapped;
  if (mapped_bytes < sizeof *page) return SWM_LIVE_SHORT;
  if (__atomic_load_n(&page->magic, __ATOMIC_ACQUIRE) != SWM_LIVE_MAGIC) return SWM_LIVE_BAD_MAGIC;
  if (page->version != SWM_LIVE_VERSION || page->bytes > mapped_bytes) return SWM_LIVE_BAD_VERSION;
  const uint64_t *from = (const uint64_t *)page;
  uint64_t *to = (uint64_t *)out;
  size_t words = sizeof *page / sizeof(uint64_t);
  for (int tries = 0; tries < 10000; tries++) {
    uint64_t before = __atomic_load_n(&page->seq, __ATOMIC_ACQUIRE);
    if (before & 1) { sched_yield(); continue; }
    for (size_t i = 0; i < words; i++) to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&page->seq, __ATOMIC_RELAXED) == before) return SWM_LIVE_OK;
  }
  return SWM_LIVE_BUSY;
}
