/*
 * stats.c: the statistics (swiftmalloc only).
 *   - swm_stats_json: the whole object fits a buffer of the returned length
 *     + 1, a short buffer is cut and NUL-terminated; the JSON follows
 *     docs/stats-schema.json and adds up (tools/check-stats-json.py, with
 *     Python's json module);
 *   - the numbers move with what the program does: blocks of a class,
 *     mmap blocks and their calls, the in-use peak, thread caches, trims;
 *   - malloc_info is glibc's XML with a swiftmalloc element, and xmllint
 *     accepts it; malloc_stats has the where, calls and class tables;
 *   - SWIFTMALLOC_STATS=json at exit; SWIFTMALLOC_STATS_FILE with %p gives
 *     each process of a forking program its own file, also when the program
 *     closed its standard error; every report names program, pid, version.
 */
#include "common.h"
#include <pthread.h>
#include "swiftmalloc.h"

static char json[1 << 16];

/* The number after "key": in the text after `section` (e.g. "\"calls\":{"). */
static long long number_at(const char *text, const char *section, const char *key) {
  const char *s = section ? strstr(text, section) : text;
  if (!s) return -1;
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\":", key);
  const char *k = strstr(s, quoted);
  return k ? strtoll(k + strlen(quoted), NULL, 10) : -1;
}

static long long class_field(const char *text, int sizeClass, const char *key) {
  char section[32];
  snprintf(section, sizeof section, "{\"class\":%d,", sizeClass);
  return number_at(text, section, key);
}

static void snapshot(void) {
  size_t n = swm_stats_json(json, sizeof json);
  REQUIRE(n > 0 && n < sizeof json && strlen(json) == n, "swm_stats_json: %zu bytes, strlen %zu", n, strlen(json));
}

/* Runs argv (NULL-terminated) with stdout and stderr into `out`; the exit status. */
static int run_tool(char *const argv[], char *out, size_t cap) {
  int fds[2];
  REQUIRE(pipe(fds) == 0, "pipe");
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0, "fork");
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    execvp(argv[0], argv);
    printf("cannot run %s\n", argv[0]);
    _exit(127);
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t r;
  while (got < cap - 1 && (r = read(fds[0], out + got, cap - 1 - got)) > 0) got += (size_t)r;
  out[got] = 0;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static char tmpdir[] = "/tmp/swm-stats.XXXXXX";

/* tools/check-stats-json.py on a file holding `text`. */
static int schema_ok(const char *text, const char *name, int consistent) {
  char path[256], out[4096];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  REQUIRE(f != NULL, "fopen %s", path);
  fputs(text, f);
  fclose(f);
  char *argv[5];
  int k = 0;
  argv[k++] = "python3";
  argv[k++] = "tools/check-stats-json.py";
  if (consistent) argv[k++] = "--consistent";
  argv[k++] = path;
  argv[k] = NULL;
  int rc = run_tool(argv, out, sizeof out);
  CHECK(rc == 0, "tools/check-stats-json.py %s: %s", name, out);
  return rc == 0;
}

static void test_buffer(void) {
  size_t need = swm_stats_json(NULL, 0);
  CHECK(need > 1000, "swm_stats_json(NULL, 0) = %zu", need);
  char small[16];
  memset(small, 'x', sizeof small);
  size_t n = swm_stats_json(small, 10);
  CHECK(n >= need - 64 && small[9] == 0 && strncmp(small, "{\"swiftmal", 9) == 0 && small[10] == 'x',
        "a 10-byte buffer: returned %zu, got '%.9s', byte 10 %#x", n, small, small[10]);
  snapshot();
  CHECK(json[0] == '{' && json[strlen(json) - 1] == '}', "not one object: %.40s", json);
  schema_ok(json, "snapshot.json", 1);
  char expect[128];
  extern char *program_invocation_short_name;
  snprintf(expect, sizeof expect, "{\"swiftmalloc\":\"%s\",\"schema\":1,\"program\":\"%s\",\"pid\":%d,", swm_version(),
           program_invocation_short_name, (int)getpid());
  CHECK(strncmp(json, expect, strlen(expect)) == 0, "the object does not start with %s: %.100s", expect, json);
}

/* Blocks of 100 bytes (class 112), an mmap block, a peak. */
static void test_numbers_move(void) {
  enum { N = 2000 };
  static void *blocks[N];
  snapshot();
  /* secure mode's canary and size word make 100 bytes a 128-byte block */
  int secure = strstr(json, "\"secure\":true") != NULL, k = secure ? 8 : 7;
  long long before = class_field(json, k, "in_use"), mmaps = number_at(json, "\"calls\":{", "mmap"),
            munmaps = number_at(json, "\"calls\":{", "munmap");
  CHECK(class_field(json, 7, "size") == 112 && class_field(json, 8, "size") == 128, "class 7 is %lld bytes, not 112",
        class_field(json, 7, "size"));
  for (int i = 0; i < N; i++) blocks[i] = malloc(V(100));
  void *big = malloc(V(3 << 20));
  sink(big);
  snapshot();
  schema_ok(json, "busy.json", 1);
  long long during = class_field(json, k, "in_use");
  CHECK(during >= before + N, "class %d: %lld blocks in use before, %lld after %d mallocs", k, before, during, N);
  CHECK(number_at(json, "\"heap\":{", "mmap_blocks") >= 1 && number_at(json, "\"where\":{", "mmap_blocks") >= 3 << 20,
        "a 3 MiB block is not counted: %.300s", strstr(json, "\"where\""));
  CHECK(number_at(json, "\"calls\":{", "mmap") > mmaps, "calls.mmap did not move: %lld", mmaps);
  long long peak_during = number_at(json, "\"in_use\":{", "peak");
  for (int i = 0; i < N; i++) free(blocks[i]);
  free(big);
  malloc_trim(0);
  snapshot();
  schema_ok(json, "after.json", 1);
  CHECK(number_at(json, "\"calls\":{", "munmap") > munmaps, "calls.munmap did not move");
  long long now = number_at(json, "\"in_use\":{", "current"), peak = number_at(json, "\"in_use\":{", "peak");
  CHECK(peak >= peak_during && peak >= now + (3 << 20), "in use %lld, peak %lld (peak %lld before the frees)", now,
        peak, peak_during);
  CHECK(class_field(json, k, "in_use") <= before, "class %d still has %lld blocks in use (%lld before)", k,
        class_field(json, k, "in_use"), before);
}

static pthread_barrier_t parked, release;

static void *holder(void *arg) {
  (void)arg;
  void *p[64];
  for (int i = 0; i < 64; i++) p[i] = malloc(V(48));
  for (int i = 0; i < 64; i++) free(p[i]);
  pthread_barrier_wait(&parked);
  pthread_barrier_wait(&release);
  return NULL;
}

static void test_thread_caches(void) {
  pthread_t t[3];
  pthread_barrier_init(&parked, NULL, 4);
  pthread_barrier_init(&release, NULL, 4);
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, holder, NULL);
  pthread_barrier_wait(&parked);
  snapshot();
  schema_ok(json, "threads.json", 1);
  if (strstr(json, "\"secure\":true")) {  /* no thread caches in secure mode */
    CHECK(number_at(json, "\"thread_caches\":{", "live") == 0, "thread caches in secure mode");
    pthread_barrier_wait(&release);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    return;
  }
  CHECK(number_at(json, "\"thread_caches\":{", "live") >= 4, "thread_caches.live %lld with 4 threads",
        number_at(json, "\"thread_caches\":{", "live"));
  CHECK(class_field(json, 3, "cached") >= 3 * 32, "class 48: %lld blocks cached by 3 parked threads",
        class_field(json, 3, "cached"));
  CHECK(number_at(json, "\"where\":{", "thread_caches") > 0, "where.thread_caches is 0");
  pthread_barrier_wait(&release);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
}

static void test_malloc_info(void) {
  char path[256], out[4096];
  snprintf(path, sizeof path, "%s/info.xml", tmpdir);
  FILE *f = fopen(path, "w");
  REQUIRE(f != NULL, "fopen");
  void *p = malloc(V(8 << 20));  /* above the threshold the 3 MiB block raised */
  sink(p);
  CHECK(malloc_info(0, f) == 0, "malloc_info");
  fclose(f);
  free(p);
  char *argv[] = {"xmllint", "--noout", path, NULL};
  int rc = run_tool(argv, out, sizeof out);
  CHECK(rc == 0, "xmllint --noout rejects malloc_info's XML (exit %d; apt-get install libxml2-utils): %s", rc, out);
  f = fopen(path, "r");
  static char xml[1 << 16];
  size_t n = fread(xml, 1, sizeof xml - 1, f);
  xml[n] = 0;
  fclose(f);
  int classes = 0;
  for (const char *s = xml; (s = strstr(s, "<class ")); s++) classes++;
  CHECK(classes == 40, "%d <class> elements in the swiftmalloc element", classes);
  CHECK(strstr(xml, "<swiftmalloc version=\"" SWIFTMALLOC_VERSION "\">") != NULL, "no swiftmalloc element");
  CHECK(strstr(xml, "<total type=\"mmap\" count=\"1\" size=\"") != NULL, "an 8 MiB mmap block is not in <total type=mmap>");
  CHECK(strstr(xml, "<size from=\"") != NULL, "no <size> in <sizes>");
}

static void test_malloc_stats(void) {
  const char *text = capture_malloc_stats();
  static const char *const order[] = {"Arena 0:\n", "\nswiftmalloc statistics\n", "\n  in use ", "\n  requested ",
                                      "\n  resident ", "\n  thread caches ", "\nwhere the memory is (bytes)\n",
                                      "\n  metadata, resident ", "\n  metadata, reserved ", "\nsystem calls\n  sbrk ",
                                      "\nsize classes ", "\n  class    size"};
  const char *at = text;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    const char *f = strstr(at, order[i]);
    if (!CHECK(f != NULL, "malloc_stats: '%s' missing or out of order: %s", order[i], text)) break;
    at = f + 1;
  }
}

/* The children of the exit-report cases. */
static int child(const char *mode) {
  void *p = malloc(V(1000));
  sink(p);
  if (strcmp(mode, "--fork") == 0) {
    for (int i = 0; i < 3; i++) {
      pid_t pid = fork();
      if (pid == 0) {
        free(malloc(V(5000)));
        exit(0);  /* exit, not _exit: the report is written by a destructor */
      }
      waitpid(pid, NULL, 0);
    }
  }
  if (strcmp(mode, "--close-stderr") == 0) close(2);
  free(p);
  return 0;
}

static char err[1 << 17];

static void test_report_at_exit(void) {
  pid_t pid;
  int st = run_self_env("stats", "--plain", (const char *const[]){"SWIFTMALLOC_STATS=json", NULL}, err, sizeof err, &pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SWIFTMALLOC_STATS=json: child status %#x", st);
  char expect[128];
  snprintf(expect, sizeof expect, "{\"swiftmalloc\":\"%s\",\"schema\":1,\"program\":\"stats\",\"pid\":%d,",
           SWIFTMALLOC_VERSION, (int)pid);
  CHECK(strncmp(err, expect, strlen(expect)) == 0 && text_lines(err) == 1, "SWIFTMALLOC_STATS=json printed: %.200s", err);
  schema_ok(err, "exit.json", 1);

  /* a forking program, every process into its own file */
  char pattern[256], path[300];
  snprintf(pattern, sizeof pattern, "SWIFTMALLOC_STATS_FILE=%s/report.%%p.json", tmpdir);
  st = run_self_env("stats", "--fork", (const char *const[]){"SWIFTMALLOC_STATS=json", pattern, NULL}, err, sizeof err,
                    &pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && err[0] == 0, "STATS_FILE: status %#x, stderr: %s", st, err);
  snprintf(path, sizeof path, "%s/report.%d.json", tmpdir, (int)pid);
  char *argv[] = {"sh", "-c", NULL, NULL};
  char command[600], out[8192], cwd[256];
  if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, ".");
  snprintf(command, sizeof command,
           "cd %s && ls report.*.json | wc -l && python3 %s/tools/check-stats-json.py report.*.json && grep -l '\"pid\":%d,' report.%d.json",
           tmpdir, cwd, (int)pid, (int)pid);
  argv[2] = command;
  int rc = run_tool(argv, out, sizeof out);
  CHECK(rc == 0 && strncmp(out, "4\n", 2) == 0, "want 4 valid reports (the program and 3 children), one per pid: %s", out);

  /* text, and a program that closes its standard error */
  snprintf(pattern, sizeof pattern, "SWIFTMALLOC_STATS_FILE=%s/closed.%%p.txt", tmpdir);
  st = run_self_env("stats", "--close-stderr", (const char *const[]){"SWIFTMALLOC_STATS=1", pattern, NULL}, err,
                    sizeof err, &pid);
  snprintf(path, sizeof path, "%s/closed.%d.txt", tmpdir, (int)pid);
  FILE *f = fopen(path, "r");
  char line[256] = "";
  if (f) {
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
  }
  snprintf(expect, sizeof expect, "swiftmalloc report: program stats, pid %d, swiftmalloc %s\n", (int)pid,
           SWIFTMALLOC_VERSION);
  CHECK(strcmp(line, expect) == 0, "%s: first line '%s', want '%s'", path, line, expect);

  /* SWIFTMALLOC_STATS_FILE alone gives the text report */
  snprintf(pattern, sizeof pattern, "SWIFTMALLOC_STATS_FILE=%s/alone.txt", tmpdir);
  st = run_self_env("stats", "--plain", (const char *const[]){pattern, NULL}, err, sizeof err, &pid);
  snprintf(path, sizeof path, "%s/alone.txt", tmpdir);
  f = fopen(path, "r");
  CHECK(f != NULL && err[0] == 0, "SWIFTMALLOC_STATS_FILE alone wrote no %s (stderr: %s)", path, err);
  if (f) fclose(f);
}

int main(int argc, char **argv) {
  if (argc > 1) return child(argv[1]);
  t_init("stats");
  if (!ours) {
    printf("stats: skipped (not swiftmalloc)\n");
    return t_finish();
  }
  REQUIRE(mkdtemp(tmpdir) != NULL, "mkdtemp");
  test_buffer();
  test_numbers_move();
  test_thread_caches();
  test_malloc_info();
  test_malloc_stats();
  test_report_at_exit();
  char command[300], out[256];
  snprintf(command, sizeof command, "rm -rf %s", tmpdir);
  char *rm[] = {"sh", "-c", command, NULL};
  if (t_failures == 0) run_tool(rm, out, sizeof out);
  else printf("stats: files kept in %s\n", tmpdir);
  return t_finish();
}
