/*
 * swm_live_reader.h: reads the live page of a process started with
 * SWIFTMALLOC_LIVE=1 (layout: Sources/CShim/include/swm_live.h) for
 * `swiftmalloc top`. Hosted code: it runs in the tool, not in the library.
 */
#ifndef SWM_LIVE_READER_H
#define SWM_LIVE_READER_H

#include <stddef.h>
#include "../../CShim/include/swm_live.h"

enum {
  SWM_LIVE_OK = 0,
  SWM_LIVE_SHORT = -1,     /* the mapping is smaller than the page */
  SWM_LIVE_BAD_MAGIC = -2, /* not a live page (or not made yet) */
  SWM_LIVE_BAD_VERSION = -3,
  SWM_LIVE_BUSY = -4,      /* no consistent copy after many tries */
};

/* A consistent copy of the page at `mapped` (seqlock), checked for magic
 * and version. */
int swm_live_snapshot(const void *mapped, size_t mapped_bytes, swm_live_page_t *out);

static inline uint64_t swm_live_magic(void) { return SWM_LIVE_MAGIC; }
static inline uint64_t swm_live_version(void) { return SWM_LIVE_VERSION; }
static inline const char *swm_live_path_prefix(void) { return SWM_LIVE_PATH_PREFIX; }
static inline swm_live_class_t swm_live_class_at(const swm_live_page_t *page, uint32_t c) { return page->classes[c]; }
static inline uint32_t swm_live_max_classes(void) { return SWM_LIVE_MAX_CLASSES; }

#endif
