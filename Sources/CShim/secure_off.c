/* Linked into libswiftmalloc.so and the hosted build: secure mode only with
 * SWIFTMALLOC_SECURE=1. (libswiftmalloc-secure.so links secure_on.c.) */
__attribute__((visibility("hidden"))) const int swm_secure_build = 0;
