/*
 * swiftmalloc.h: the public interface of libswiftmalloc beyond the standard
 * malloc family (which it exports under the usual names, with glibc's
 * semantics: see README.md).
 *
 * The swm_ functions reach the same allocator without interposing malloc:
 * a program can use them while the rest of the process keeps its own malloc.
 */
#ifndef SWIFTMALLOC_H
#define SWIFTMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void  *swm_malloc(size_t size);
void   swm_free(void *p);
void  *swm_calloc(size_t count, size_t size);
void  *swm_realloc(void *p, size_t size);
int    swm_posix_memalign(void **memptr, size_t alignment, size_t size);
size_t swm_usable_size(void *p);

/* C23 / glibc 2.39 names, for libcs whose headers lack them. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

#ifdef __cplusplus
}
#endif
#endif
