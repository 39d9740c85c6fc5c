/* linked.c: a C program linked against libswiftmalloc (static or shared).
 * Its malloc is swiftmalloc's; the swm_ entry points reach the same heap.
 *   cc examples/linked.c -I build/include build/libswiftmalloc.a -pthread -o linked
 *   cc examples/linked.c -I build/include -L build -lswiftmalloc -Wl,-rpath,$PWD/build -o linked
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "swiftmalloc.h"

struct node { struct node *next; char name[40]; };

int main(void) {
  struct node *head = NULL;
  for (int i = 0; i < 100000; i++) {
    struct node *n = malloc(sizeof *n);
    if (!n) return 1;
    snprintf(n->name, sizeof n->name, "node %d", i);
    n->next = head;
    head = n;
  }
  size_t count = 0;
  while (head) {
    struct node *next = head->next;
    free(head);
    head = next;
    count++;
  }
  char *text = swm_malloc(64);
  strcpy(text, "allocated with swm_malloc");
  printf("freed %zu nodes; %s (usable size %zu)\n", count, text, swm_usable_size(text));
  fflush(stdout);
  swm_free(text);
  malloc_stats();
  return 0;
}
