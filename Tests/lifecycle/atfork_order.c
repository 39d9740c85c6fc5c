/*
 * atfork_order.c: other pthread_atfork handlers that allocate.
 * Kind: the allocator's fork handlers must work whatever the order in which
 * they and other libraries' handlers were registered. References:
 * Perl/perl5#13687, gperftools#904, dmtcp#612; glibc itself locks malloc
 * after ALL prepare handlers and unlocks it before ALL parent/child handlers.
 *
 *   atfork_order ctor    lib_atfork.so is DT_NEEDED: its constructor registers
 *                        handlers before the allocator's first use (and, with
 *                        the allocator preloaded or linked statically, before
 *                        the allocator's constructor)
 *   atfork_order dlopen  lib_atfork.so is dlopened after the program has
 *                        allocated and started a thread: registered after
 * Its prepare, parent and child handlers each malloc and free. A thread keeps
 * allocating while the main thread forks 20 times; each child allocates.
 * Right answer (glibc): every fork returns, each handler ran once per fork,
 * every child exits 0.
 */
#include "lc.h"

#include <pthread.h>

enum { FORKS = 20 };
static volatile int stop;

static void *churn(void *arg) {
  (void)arg;
  for (unsigned i = 0; !stop; i++) free(malloc(16 + i % 5000));
  return NULL;
}

static int *counter(void *handle, const char *name) {
  int *p = dlsym(handle, name);
  REQUIRE(p != NULL, "lib_atfork.so: %s not found", name);
  return p;
}

int main(int argc, char **argv) {
  int late = argc > 1 && strcmp(argv[1], "dlopen") == 0;
  lc_what = "fork() did not return: an atfork handler that allocates deadlocked";
  lc_init(late ? "atfork_order dlopen" : "atfork_order ctor", 8);

  void *lib = RTLD_DEFAULT;
  void *warm = malloc(5000);   /* the allocator is in use from here */
  pthread_t t;
  pthread_create(&t, NULL, churn, NULL);
  if (late) {
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    REQUIRE(n > 0, "readlink /proc/self/exe");
    path[n] = 0;
    strcpy(strrchr(path, '/') + 1, "liblc_atfork.so");
    lib = dlopen(path, RTLD_NOW);
    REQUIRE(lib != NULL, "dlopen: %s", dlerror());
  }
  int *prepared = counter(lib, "lc_atfork_prepared");
  int *parented = counter(lib, "lc_atfork_parented");
  int *childed = counter(lib, "lc_atfork_childed");

  for (int i = 0; i < FORKS; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      void *p = malloc(1000), *q = malloc(200000);
      _exit(p && q && *childed == 1 ? 0 : 1);   /* its child handler ran here */
    }
    REQUIRE(pid > 0, "fork: %s", strerror(errno));
    char why[80];
    int st = lc_wait_child(pid, 10);
    CHECK(st == 0, "fork %d: child %s", i, lc_status_text(st, why, sizeof why));
  }
  stop = 1;
  pthread_join(t, NULL);
  free(warm);
  printf("handlers ran: prepare %d, parent %d (for %d forks)\n", *prepared, *parented, FORKS);
  CHECK(*prepared == FORKS && *parented == FORKS, "each handler must run once per fork");
  return lc_finish();
}
