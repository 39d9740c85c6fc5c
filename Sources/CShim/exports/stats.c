/*
 * stats.c (included by exports.c): the statistics printers. malloc_stats (glibc's report, then
 * swiftmalloc's), malloc_info (glibc's XML, then a swiftmalloc element),
 * swm_stats_json (the same numbers as one JSON object, into the caller's
 * buffer) and the report at exit (SWIFTMALLOC_STATS=1|json, to standard
 * error or SWIFTMALLOC_STATS_FILE).
 *
 * The numbers come from Swift (swmcore_collect_report, API/Stats.swift);
 * docs/statistics.md says what each counts and docs/stats-schema.json
 * describes the JSON. This file only formats them, with its own number
 * formatting into a buffer, a file descriptor (write(2)) or, for the two
 * glibc calls that name one, a FILE: nothing here allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include "swm_shim.h"
#include "swiftmalloc.h"

extern void swmcore_collect_report(swm_report_t *);
extern int swmcore_report_format(void);
extern const char *swmcore_report_file(void);

/* MARK: output ---------------------------------------------------------------- */

/* Where text goes: a buffer (kept up to cap - 1 bytes, NUL-terminated by
 * out_end), a file descriptor or a FILE; `total` counts every byte made. */
typedef struct {
  char *buf;
  size_t cap;
  int fd;
  FILE *fp;
  size_t total;
  size_t n;
  char chunk[1024];
} out_t;

static void out_flush(out_t *o) {
  if (o->n == 0) return;
  if (o->fp) fwrite(o->chunk, 1, o->n, o->fp);
  else if (o->fd >= 0) swm_sys_write(o->fd, o->chunk, o->n);
  o->n = 0;
}

static void out_bytes(out_t *o, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (o->buf) {
      if (o->total + 1 < o->cap) o->buf[o->total] = s[i];
    } else {
      if (o->n == sizeof o->chunk) out_flush(o);
      o->chunk[o->n++] = s[i];
    }
    o->total++;
  }
}

static void out_end(out_t *o) {
  if (o->buf && o->cap > 0) o->buf[o->total < o->cap ? o->total : o->cap - 1] = 0;
  out_flush(o);
}

static void out_str(out_t *o, const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  out_bytes(o, s, n);
}

/* s, then spaces up to `width` */
static void out_padded(out_t *o, const char *s, size_t width) {
  size_t n = 0;
  while (s[n]) n++;
  out_bytes(o, s, n);
  while (n++ < width) out_bytes(o, " ", 1);
}

/* v right-aligned in `width` (0: none) */
static void out_num(out_t *o, uint64_t v, size_t width) {
  char digits[24];
  size_t n = 0;
  do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v != 0);
  for (size_t pad = n; pad < width; pad++) out_bytes(o, " ", 1);
  while (n > 0) out_bytes(o, &digits[--n], 1);
}

/* MARK: the process ----------------------------------------------------------- */

/* Resident bytes of the whole process now (/proc/self/statm) and at most
 * (getrusage); 0 when they cannot be read. */
static void process_rss(size_t *now, size_t *peak) {
  *now = 0;
  *peak = 0;
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char text[128];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    size_t field = 0, value = 0;
    for (ssize_t i = 0; i < n && field < 2; i++) {
      if (text[i] == ' ') { field++; continue; }
      if (field == 1) value = value * 10 + (size_t)(text[i] - '0');
    }
    *now = value * (size_t)sysconf(_SC_PAGESIZE);
  }
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) == 0) *peak = (size_t)usage.ru_maxrss * 1024;
  if (*peak < *now) *peak = *now;  /* the kernel updates its high-water mark lazily */
}

static const char *program_name(void) {
  return program_invocation_short_name && program_invocation_short_name[0] ? program_invocation_short_name : "?";
}

/* MARK: text (malloc_stats) ----------------------------------------------------- */

static void text_row(out_t *o, const char *label, size_t v, const char *after) {
  out_str(o, "  ");
  out_padded(o, label, 18);
  out_num(o, v, 14);
  out_str(o, after);
}

/* glibc's lines, in glibc's order and format (tools parse them). */
static void text_glibc(out_t *o, const swm_report_t *r) {
  size_t system = r->basic.arena + r->basic.region_mmap, in_use = r->basic.uordblks;
  const char *label[] = {"Arena 0:\nsystem bytes     = ", "\nin use bytes     = ",
                         "\nTotal (incl. mmap):\nsystem bytes     = ", "\nin use bytes     = ",
                         "\nmax mmap regions = ", "\nmax mmap bytes   = "};
  size_t value[] = {system, in_use, system + r->basic.hblkhd, in_use + r->basic.hblkhd, r->basic.hblks_peak,
                    r->basic.hblkhd_peak};
  for (int i = 0; i < 6; i++) {
    out_str(o, label[i]);
    out_num(o, value[i], 10);
  }
  out_str(o, "\n");
}

static void text_summary(out_t *o, const swm_report_t *r) {
  size_t rss, rss_peak;
  process_rss(&rss, &rss_peak);
  out_str(o, "swiftmalloc statistics\n  version                " SWIFTMALLOC_VERSION "\n");
  text_row(o, "in use", r->in_use, " bytes (peak ");
  out_num(o, r->in_use_peak, 0);
  out_str(o, "): the program's blocks, thread-cache blocks, mmap blocks\n");
  text_row(o, "requested", r->requested, " bytes (peak ");
  out_num(o, r->requested_peak, 0);
  out_str(o, ") from the OS: heap, mmap blocks, metadata\n");
  text_row(o, "resident", r->resident, " bytes at most; the process: ");
  out_num(o, rss, 0);
  out_str(o, " (peak ");
  out_num(o, rss_peak, 0);
  out_str(o, ")\n");
  text_row(o, "sbrk heap", r->basic.arena, " bytes (heap peak ");
  out_num(o, r->heap_peak, 0);
  out_str(o, ")\n");
  text_row(o, "mmap regions", r->basic.region_mmap, " bytes (page heap, when sbrk could not grow)\n");
  text_row(o, "top (trimmable)", r->basic.keepcost, " bytes\n");
  text_row(o, "mmap blocks", r->basic.hblkhd, " bytes in ");
  out_num(o, r->basic.hblks, 0);
  out_str(o, " blocks\n");
  text_row(o, "thread caches", r->caches_live, " live, budget ");
  out_num(o, r->cache_budget, 0);
  out_str(o, " bytes, each may keep ");
  out_num(o, r->cache_share, 0);
  out_str(o, "\n");
}

static void text_where(out_t *o, const swm_report_t *r) {
  const char *label[] = {"program's blocks", "thread-cache bins", "central lists", "span tails", "quarantine",
                         "guard pages", "free, dirty", "free, decommitted", "mmap blocks", "metadata, resident",
                         "metadata, reserved"};
  size_t value[] = {r->program, r->thread_caches, r->central, r->tails, r->quarantine, r->guards, r->dirty,
                    r->decommitted, r->mmap_blocks, r->meta_resident, r->meta_reserved};
  out_str(o, "where the memory is (bytes)\n");
  for (int i = 0; i < 11; i++) text_row(o, label[i], value[i], "\n");
  const char *call[] = {"sbrk ", ", mmap ", ", munmap ", ", mremap ", ", madvise ", ", guard pages ", "; trims ",
                        ", decays "};
  size_t calls[] = {r->sbrk_calls, r->mmap_calls, r->munmap_calls, r->mremap_calls, r->madvise_calls,
                    r->guard_calls, r->trims, r->decays};
  out_str(o, "system calls\n  ");
  for (int i = 0; i < 8; i++) {
    out_str(o, call[i]);
    out_num(o, calls[i], 0);
  }
  out_str(o, "\n");
}

static void text_classes(out_t *o, const swm_report_t *r) {
  out_str(o, "size classes (with spans or cached blocks; blocks, waste in bytes)\n"
             "  class    size  pages  per span   spans    in use    cached   central quarantine     waste\n");
  for (int c = 1; c < SWM_NUM_CLASSES; c++) {
    const swm_class_report_t *k = &r->classes[c];
    if (k->spans == 0 && k->cached == 0) continue;
    size_t v[] = {(size_t)c, k->size, k->span_pages, k->blocks_per_span, k->spans, k->in_use, k->cached,
                  k->central, k->quarantined, k->waste};
    size_t w[] = {7, 8, 7, 10, 8, 10, 10, 10, 11, 10};
    for (int i = 0; i < 10; i++) out_num(o, v[i], w[i]);
    out_str(o, "\n");
  }
}

static void text_report(out_t *o, const swm_report_t *r) {
  text_glibc(o, r);
  text_summary(o, r);
  text_where(o, r);
  text_classes(o, r);
}

/* glibc's report first (tools parse it: one arena, then the totals with
 * mmap blocks), then ours. Not a cancellation point, as glibc's is not (BZ
 * #22830): a thread with a pending cancel prints the whole report. */
SWM_EXPORT void malloc_stats(void) {
  swm_report_t r;
  swmcore_collect_report(&r);
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  out_t o = {.fd = -1, .fp = stderr};
  text_report(&o, &r);
  out_end(&o);
  fflush(stderr);
  pthread_setcancelstate(cancel_state, NULL);
}

/* MARK: JSON (swm_stats_json, SWIFTMALLOC_STATS=json) ---------------------------- */

static void json_string(out_t *o, const char *s) {
  out_str(o, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out_bytes(o, "\\", 1); out_bytes(o, s, 1); }
    else if (c < 0x20) { char e[7] = {'\\', 'u', '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15], 0}; out_str(o, e); }
    else out_bytes(o, s, 1);
  }
  out_str(o, "\"");
}

/* "name": v, with `sep` before it ("{" or ",") */
static void json_num(out_t *o, const char *sep, const char *name, size_t v) {
  out_str(o, sep);
  out_str(o, "\"");
  out_str(o, name);
  out_str(o, "\":");
  out_num(o, v, 0);
}

/* ,"name":{"key":value,... of numbers; the caller closes it */
static void json_open(out_t *o, const char *name, const char *const *keys, const size_t *values, int n) {
  out_str(o, ",\"");
  out_str(o, name);
  out_str(o, "\":");
  for (int i = 0; i < n; i++) json_num(o, i == 0 ? "{" : ",", keys[i], values[i]);
}

static void json_object(out_t *o, const char *name, const char *const *keys, const size_t *values, int n) {
  json_open(o, name, keys, values, n);
  out_str(o, "}");
}

static void json_bytes(out_t *o, const swm_report_t *r) {
  size_t rss, rss_peak;
  process_rss(&rss, &rss_peak);
  json_num(o, ",\"bytes\":{\"in_use\":{", "current", r->in_use);
  json_num(o, ",", "peak", r->in_use_peak);
  json_num(o, "},\"requested\":{", "current", r->requested);
  json_num(o, ",", "peak", r->requested_peak);
  json_num(o, "},\"resident\":{", "current", r->resident);
  json_num(o, "},\"process_resident\":{", "current", rss);
  json_num(o, ",", "peak", rss_peak);
  out_str(o, "}}");
}

static void json_sections(out_t *o, const swm_report_t *r) {
  static const char *const where[] = {"program", "thread_caches", "central_lists", "span_tails", "quarantine",
                                      "guard_pages", "free_dirty", "free_decommitted", "mmap_blocks",
                                      "metadata_resident", "metadata_reserved"};
  size_t where_v[] = {r->program, r->thread_caches, r->central, r->tails, r->quarantine, r->guards, r->dirty,
                      r->decommitted, r->mmap_blocks, r->meta_resident, r->meta_reserved};
  json_object(o, "where", where, where_v, 11);
  static const char *const heap[] = {"sbrk", "mmap_regions", "peak", "top_trimmable", "mmap_blocks",
                                     "mmap_blocks_peak", "mmap_bytes_peak"};
  size_t heap_v[] = {r->basic.arena, r->basic.region_mmap, r->heap_peak, r->basic.keepcost, r->basic.hblks,
                     r->basic.hblks_peak, r->basic.hblkhd_peak};
  json_object(o, "heap", heap, heap_v, 7);
  static const char *const calls[] = {"sbrk", "mmap", "munmap", "mremap", "madvise", "guard_pages", "trims",
                                      "decays"};
  size_t calls_v[] = {r->sbrk_calls, r->mmap_calls, r->munmap_calls, r->mremap_calls, r->madvise_calls,
                      r->guard_calls, r->trims, r->decays};
  json_object(o, "calls", calls, calls_v, 8);
  static const char *const caches[] = {"live", "budget", "share"};
  size_t caches_v[] = {r->caches_live, r->cache_budget, r->cache_share};
  json_object(o, "thread_caches", caches, caches_v, 3);
  static const char *const options[] = {"mmap_threshold", "top_pad", "mmap_max", "dirty_limit", "decay_ms",
                                        "perturb", "check"};
  size_t options_v[] = {r->mmap_threshold, r->top_pad, r->mmap_max, r->dirty_limit, r->decay_ms, r->perturb,
                        r->check};
  json_open(o, "options", options, options_v, 7);
  out_str(o, ",\"trim_threshold\":");
  if (r->trim_threshold == (size_t)-1) out_str(o, "-1"); else out_num(o, r->trim_threshold, 0);
  out_str(o, r->secure ? ",\"secure\":true}" : ",\"secure\":false}");
}

static void json_classes(out_t *o, const swm_report_t *r) {
  static const char *const keys[] = {"size", "span_pages", "blocks_per_span", "spans", "in_use", "cached",
                                     "central", "quarantined", "waste_bytes"};
  out_str(o, ",\"classes\":[");
  for (int c = 1; c < SWM_NUM_CLASSES; c++) {
    const swm_class_report_t *k = &r->classes[c];
    size_t v[] = {k->size, k->span_pages, k->blocks_per_span, k->spans, k->in_use, k->cached, k->central,
                  k->quarantined, k->waste};
    json_num(o, c == 1 ? "{" : ",{", "class", (size_t)c);
    for (int i = 0; i < 9; i++) json_num(o, ",", keys[i], v[i]);
    out_str(o, "}");
  }
  out_str(o, "]");
}

static void json_report(out_t *o, const swm_report_t *r) {
  out_str(o, "{\"swiftmalloc\":\"" SWIFTMALLOC_VERSION "\",\"schema\":1,\"program\":");
  json_string(o, program_name());
  json_num(o, ",", "pid", (size_t)getpid());
  json_bytes(o, r);
  json_sections(o, r);
  json_classes(o, r);
  out_str(o, "}");
}

SWM_EXPORT size_t swm_stats_json(char *buf, size_t len) {
  swm_report_t r;
  swmcore_collect_report(&r);
  out_t o = {.buf = buf, .cap = buf ? len : 0, .fd = -1};
  json_report(&o, &r);
  out_end(&o);
  return o.total;
}

/* MARK: XML (malloc_info) --------------------------------------------------------- */

static void xml_attr(out_t *o, const char *name, size_t v) {
  out_str(o, " ");
  out_str(o, name);
  out_str(o, "=\"");
  out_num(o, v, 0);
  out_str(o, "\"");
}

/* <size from=".." to=".." total=".." count=".."/> */
static void xml_size(out_t *o, size_t from, size_t to, size_t total, size_t count) {
  out_str(o, "  <size");
  xml_attr(o, "from", from);
  xml_attr(o, "to", to);
  xml_attr(o, "total", total);
  xml_attr(o, "count", count);
  out_str(o, "/>\n");
}

/* glibc's <sizes>: the free blocks of each class (central lists and thread
 * caches), then the page heap's free spans by length. */
static void xml_sizes(out_t *o, const swm_report_t *r) {
  out_str(o, "<sizes>\n");
  size_t previous = 0;
  for (int c = 1; c < SWM_NUM_CLASSES; c++) {
    const swm_class_report_t *k = &r->classes[c];
    size_t count = k->central + k->cached;
    if (count) xml_size(o, previous + 1, k->size, count * k->size, count);
    previous = k->size;
  }
  for (size_t n = 1; n <= 128; n++)
    if (r->free_runs[n]) xml_size(o, n * 4096, n * 4096, r->free_runs[n] * n * 4096, r->free_runs[n]);
  if (r->free_long_runs) xml_size(o, 129 * 4096, r->free_long_max, r->free_long_bytes, r->free_long_runs);
  out_str(o, "</sizes>\n");
}

/* the <total>, <system> and <aspace> lines of a heap and of the whole */
static void xml_totals(out_t *o, const swm_report_t *r, size_t cached_count, size_t rest_count, int whole) {
  size_t heap = r->basic.arena + r->basic.region_mmap;
  out_str(o, "<total type=\"fast\"");
  xml_attr(o, "count", cached_count);
  xml_attr(o, "size", r->thread_caches);
  out_str(o, "/>\n<total type=\"rest\"");
  xml_attr(o, "count", rest_count);
  xml_attr(o, "size", r->central + r->dirty + r->decommitted);
  out_str(o, "/>\n");
  if (whole) {
    out_str(o, "<total type=\"mmap\"");
    xml_attr(o, "count", r->basic.hblks);
    xml_attr(o, "size", r->basic.hblkhd);
    out_str(o, "/>\n");
  }
  const char *lines[] = {"<system type=\"current\"", "<system type=\"max\"", "<aspace type=\"total\"",
                         "<aspace type=\"mprotect\""};
  size_t values[] = {heap, r->heap_peak, heap, heap};
  for (int i = 0; i < 4; i++) {
    out_str(o, lines[i]);
    xml_attr(o, "size", values[i]);
    out_str(o, "/>\n");
  }
}

/* swiftmalloc's own element: one <class> per size class. */
static void xml_classes(out_t *o, const swm_report_t *r) {
  out_str(o, "<swiftmalloc version=\"" SWIFTMALLOC_VERSION "\">\n");
  for (int c = 1; c < SWM_NUM_CLASSES; c++) {
    const swm_class_report_t *k = &r->classes[c];
    out_str(o, "  <class");
    xml_attr(o, "nr", (size_t)c);
    xml_attr(o, "size", k->size);
    xml_attr(o, "span_pages", k->span_pages);
    xml_attr(o, "blocks_per_span", k->blocks_per_span);
    xml_attr(o, "spans", k->spans);
    xml_attr(o, "in_use", k->in_use);
    xml_attr(o, "cached", k->cached);
    xml_attr(o, "central", k->central);
    xml_attr(o, "quarantined", k->quarantined);
    xml_attr(o, "waste", k->waste);
    out_str(o, "/>\n");
  }
  out_str(o, "</swiftmalloc>\n");
}

SWM_EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0) { errno = EINVAL; return -1; }
  swm_report_t r;
  swmcore_collect_report(&r);
  size_t cached = 0, rest = 0;
  for (int c = 1; c < SWM_NUM_CLASSES; c++) {
    cached += r.classes[c].cached;
    rest += r.classes[c].central;
  }
  for (size_t n = 1; n <= 128; n++) rest += r.free_runs[n];
  rest += r.free_long_runs;
  out_t o = {.fd = -1, .fp = fp};
  out_str(&o, "<malloc version=\"1\" swiftmalloc=\"" SWIFTMALLOC_VERSION "\">\n<heap nr=\"0\">\n");
  xml_sizes(&o, &r);
  xml_totals(&o, &r, cached, rest, 0);
  out_str(&o, "</heap>\n");
  xml_totals(&o, &r, cached, rest, 1);
  xml_classes(&o, &r);
  out_str(&o, "</malloc>\n");
  out_end(&o);
  return 0;
}

/* MARK: the report at exit ----------------------------------------------------- */

/* SWIFTMALLOC_STATS_FILE with every %p replaced by the pid (and %% by %);
 * 0 when it does not fit. */
static int report_path(const char *pattern, char *path, size_t cap) {
  out_t o = {.buf = path, .cap = cap, .fd = -1};
  for (const char *p = pattern; *p; p++) {
    if (p[0] == '%' && p[1] == 'p') { out_num(&o, (size_t)getpid(), 0); p++; }
    else if (p[0] == '%' && p[1] == '%') { out_str(&o, "%"); p++; }
    else out_bytes(&o, p, 1);
  }
  out_end(&o);
  return o.total < cap;
}

/* SWIFTMALLOC_STATS=1|json: the report, when the process exits (a
 * destructor: after atexit handlers; a process that ends with _exit or a
 * signal prints none). The first line (text) or the first members (JSON)
 * name the program, the pid and the version. */
__attribute__((destructor)) static void swm_report_at_exit(void) {
  int format = swmcore_report_format();
  if (format == 0) return;
  const char *file = swmcore_report_file();
  int fd = 2;
  if (file[0]) {
    char path[512];
    fd = report_path(file, path, sizeof path) ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (fd < 0) { swm_warn("cannot write the statistics to SWIFTMALLOC_STATS_FILE=", file, NULL); return; }
  }
  swm_report_t r;
  swmcore_collect_report(&r);
  out_t o = {.fd = fd};
  if (format == 2) {
    json_report(&o, &r);
    out_str(&o, "\n");
  } else {
    out_str(&o, "swiftmalloc report: program ");
    out_str(&o, program_name());
    out_str(&o, ", pid ");
    out_num(&o, (size_t)getpid(), 0);
    out_str(&o, ", swiftmalloc " SWIFTMALLOC_VERSION "\n");
    text_report(&o, &r);
  }
  out_end(&o);
  if (fd != 2) close(fd);
}
