/* Linked into libswiftmalloc-secure.so only: secure mode always on. */
__attribute__((visibility("hidden"))) const int swm_secure_build = 1;
