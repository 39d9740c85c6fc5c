/*
 * lib_atfork.c: helper library for atfork_order.c. Like OpenBLAS- or
 * ICU-style libraries, its ELF constructor registers pthread_atfork handlers
 * and each handler allocates and frees. Linked as DT_NEEDED its constructor
 * runs before the allocator's (registered first); dlopened after the program
 * has allocated, it registers after the allocator.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void *child_state;
int lc_atfork_prepared, lc_atfork_parented, lc_atfork_childed;

static void prepare(void) {
  char *p = malloc(200);
  if (p) { memset(p, 1, 200); lc_atfork_prepared++; }
  free(p);
}

static void parent(void) {
  void *p = calloc(1, 3000);
  if (p) lc_atfork_parented++;
  free(p);
}

static void child(void) {
  free(child_state);               /* the copy of the parent's block */
  child_state = malloc(700);
  if (child_state) { memset(child_state, 2, 700); lc_atfork_childed++; }
}

/* Registers before anything in the process allocated. */
__attribute__((constructor)) static void register_handlers(void) { pthread_atfork(prepare, parent, child); }
