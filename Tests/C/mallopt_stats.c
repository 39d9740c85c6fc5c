/*
 * mallopt_stats.c: mallopt, mallinfo2, malloc_stats and malloc_info.
 */
#include "common.h"


/* Default threshold: 128 KiB, so a 200 KiB block is an mmap block. Must run
 * first: glibc raises its threshold when an mmap block is freed. */
static void test_default_threshold(void) {
  struct mallinfo2 a = mallinfo2();
  void *p = malloc(V(200 << 10));
  REQUIRE(p != NULL, "malloc(200 KiB)");
  memset(p, 1, 200 << 10);
  struct mallinfo2 b = mallinfo2();
  CHECK(b.hblkhd >= a.hblkhd + (200 << 10), "default: a 200 KiB block is not mmapped: hblkhd %zu -> %zu",
        a.hblkhd, b.hblkhd);
  CHECK(b.hblks == a.hblks + 1, "default: hblks %zu -> %zu after one mmap block", a.hblks, b.hblks);
  free(p);
  struct mallinfo2 c = mallinfo2();
  CHECK(c.hblkhd + (200 << 10) <= b.hblkhd, "free of an mmap block did not lower hblkhd: %zu -> %zu",
        b.hblkhd, c.hblkhd);
  CHECK(c.hblks == a.hblks, "hblks %zu after free, want %zu", c.hblks, a.hblks);
}

static void test_mallopt(void) {
  CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1, "mallopt(M_MMAP_THRESHOLD, 256K) did not return 1");
  struct mallinfo2 a = mallinfo2();
  void *p = malloc(V(200 << 10));
  REQUIRE(p != NULL, "malloc(200 KiB)");
  memset(p, 2, 200 << 10);
  struct mallinfo2 b = mallinfo2();
  CHECK(b.hblkhd == a.hblkhd, "threshold 256K: a 200 KiB block was mmapped (hblkhd %zu -> %zu)", a.hblkhd,
        b.hblkhd);
  CHECK(b.uordblks >= a.uordblks + (200 << 10), "threshold 256K: uordblks %zu -> %zu for a 200 KiB block",
        a.uordblks, b.uordblks);
  /* and 300 KiB still is */
  void *q = malloc(V(300 << 10));
  REQUIRE(q != NULL, "malloc(300 KiB)");
  struct mallinfo2 c = mallinfo2();
  CHECK(c.hblkhd >= b.hblkhd + (300 << 10), "threshold 256K: a 300 KiB block is not mmapped (%zu -> %zu)",
        b.hblkhd, c.hblkhd);
  free(q);
  free(p);

  CHECK(mallopt(M_TRIM_THRESHOLD, 256 * 1024) == 1, "mallopt(M_TRIM_THRESHOLD) did not return 1");
  CHECK(mallopt(M_TOP_PAD, 64 * 1024) == 1, "mallopt(M_TOP_PAD) did not return 1");
  CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1, "mallopt(M_TRIM_THRESHOLD) did not return 1");
  /* an unknown parameter is accepted and ignored: 1, as glibc 2.36 */
  CHECK(mallopt(12345, 1) == 1, "mallopt(12345, 1) did not return 1");
  CHECK(mallopt(-12345, 1) == 1, "mallopt(-12345, 1) did not return 1");

  /* M_MMAP_MAX = 0 turns mmap blocks off */
  CHECK(mallopt(M_MMAP_MAX, 0) == 1, "mallopt(M_MMAP_MAX, 0) did not return 1");
  a = mallinfo2();
  p = malloc(V(1 << 20));
  REQUIRE(p != NULL, "malloc(1 MiB) with M_MMAP_MAX 0");
  memset(p, 3, 1 << 20);
  b = mallinfo2();
  CHECK(b.hblkhd == a.hblkhd, "M_MMAP_MAX 0: a 1 MiB block was mmapped (hblkhd %zu -> %zu)", a.hblkhd, b.hblkhd);
  free(p);
  CHECK(mallopt(M_MMAP_MAX, 65536) == 1, "mallopt(M_MMAP_MAX, 65536) did not return 1");
  a = mallinfo2();
  p = malloc(V(1 << 20));
  REQUIRE(p != NULL, "malloc(1 MiB)");
  b = mallinfo2();
  CHECK(b.hblkhd >= a.hblkhd + (1 << 20), "M_MMAP_MAX restored: a 1 MiB block is not mmapped");
  free(p);
}

static void test_mallinfo2(void) {
  enum { N = 1024, SZ = 1024 };
  static void *blocks[N];
  struct mallinfo2 a = mallinfo2();
  CHECK(a.uordblks + a.fordblks == a.arena, "arena %zu != uordblks %zu + fordblks %zu", a.arena, a.uordblks,
        a.fordblks);
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(V(SZ));
    REQUIRE(blocks[i] != NULL, "malloc(1 KiB)");
    memset(blocks[i], i, SZ);
  }
  struct mallinfo2 b = mallinfo2();
  long grew = (long)b.uordblks - (long)a.uordblks;
  CHECK(grew >= (long)(N * SZ) * 95 / 100 && grew <= (long)(N * SZ) * 5 / 4,
        "1 MiB in 1 KiB blocks: uordblks grew by %ld (%zu -> %zu)", grew, a.uordblks, b.uordblks);
  CHECK(b.arena >= b.uordblks, "arena %zu < uordblks %zu", b.arena, b.uordblks);
  CHECK(b.arena >= (size_t)N * SZ, "arena %zu below the 1 MiB in use", b.arena);
  CHECK(b.uordblks + b.fordblks == b.arena, "arena %zu != uordblks %zu + fordblks %zu", b.arena, b.uordblks,
        b.fordblks);
  CHECK(b.keepcost <= b.fordblks, "keepcost %zu > fordblks %zu", b.keepcost, b.fordblks);
  CHECK(b.hblkhd == a.hblkhd, "small blocks changed hblkhd %zu -> %zu", a.hblkhd, b.hblkhd);
  for (int i = 0; i < N; i++) free(blocks[i]);
  struct mallinfo2 c = mallinfo2();
  long shrank = (long)b.uordblks - (long)c.uordblks;
  CHECK(shrank >= (long)(N * SZ) * 3 / 4, "freeing 1 MiB lowered uordblks by only %ld (%zu -> %zu)", shrank,
        b.uordblks, c.uordblks);
  CHECK(c.uordblks + c.fordblks == c.arena, "after free: arena %zu != uordblks %zu + fordblks %zu", c.arena,
        c.uordblks, c.fordblks);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
  struct mallinfo2 now = mallinfo2();
  CHECK((size_t)old.hblkhd == now.hblkhd && (size_t)old.hblks == now.hblks,
        "mallinfo and mallinfo2 disagree: hblkhd %d/%zu hblks %d/%zu", old.hblkhd, now.hblkhd, old.hblks, now.hblks);
}

static void test_malloc_stats(void) {
  fflush(stdout);
  fflush(stderr);
  int saved1 = dup(1), saved2 = dup(2);
  FILE *out = tmpfile(), *err = tmpfile();
  REQUIRE(out && err && saved1 >= 0 && saved2 >= 0, "tmpfile/dup");
  dup2(fileno(out), 1);
  dup2(fileno(err), 2);
  malloc_stats();
  fflush(stdout);
  fflush(stderr);
  dup2(saved1, 1);
  dup2(saved2, 2);
  close(saved1);
  close(saved2);
  long outlen = lseek(fileno(out), 0, SEEK_END);
  static char buf[8192];
  rewind(err);
  size_t n = fread(buf, 1, sizeof buf - 1, err);
  buf[n] = 0;
  fclose(out);
  fclose(err);
  CHECK(outlen == 0, "malloc_stats wrote %ld bytes to stdout", outlen);
  CHECK(n > 20, "malloc_stats wrote %zu bytes to stderr", n);
  CHECK(n > 0 && buf[n - 1] == '\n', "malloc_stats output does not end with a newline");
  /* glibc's lines first, in glibc's order (tools parse them), then ours */
  static const char *const glibc_lines[] = {"Arena 0:\n", "system bytes     = ", "in use bytes     = ",
                                            "Total (incl. mmap):\n", "max mmap regions = ", "max mmap bytes   = "};
  const char *at = buf;
  for (size_t i = 0; i < sizeof glibc_lines / sizeof glibc_lines[0]; i++) {
    const char *found = strstr(at, glibc_lines[i]);
    CHECK(found != NULL, "malloc_stats: no '%s' after offset %td: %.200s", glibc_lines[i], at - buf, buf);
    if (found) at = found;
  }
  CHECK(strncmp(buf, "Arena 0:\n", 9) == 0, "malloc_stats does not start with glibc's 'Arena 0:': %.60s", buf);
  if (ours) CHECK(strstr(at, "\nswiftmalloc statistics\n") != NULL, "malloc_stats: our table does not follow glibc's lines: %.300s", buf);
}

/* Checks that the text is one element whose tags nest; returns NULL or what is wrong. */
static const char *check_xml(const char *s, char *why, size_t cap) {
  char stack[64][32];
  int depth = 0, roots = 0;
  const char *p = s;
  while (*p) {
    if (*p != '<') {
      if (*p != '\n' && *p != ' ' && depth == 0) { snprintf(why, cap, "text outside the root at %ld", (long)(p - s)); return why; }
      p++;
      continue;
    }
    const char *end = strchr(p, '>');
    if (!end) { snprintf(why, cap, "unterminated tag at %ld", (long)(p - s)); return why; }
    int quotes = 0;
    for (const char *q = p; q < end; q++) quotes += *q == '"';
    if (quotes % 2) { snprintf(why, cap, "unbalanced quotes in tag at %ld", (long)(p - s)); return why; }
    int closing = p[1] == '/';
    int selfclosing = end[-1] == '/';
    const char *name = p + 1 + closing;
    size_t len = strcspn(name, " />");
    if (len == 0 || len >= 32) { snprintf(why, cap, "bad tag name at %ld", (long)(p - s)); return why; }
    if (closing) {
      if (depth == 0 || strlen(stack[depth - 1]) != len || strncmp(stack[depth - 1], name, len) != 0) {
        snprintf(why, cap, "closing tag </%.*s> does not match <%s>", (int)len, name, depth ? stack[depth - 1] : "");
        return why;
      }
      depth--;
    } else if (!selfclosing) {
      if (depth == 0) roots++;
      if (depth == 64) { snprintf(why, cap, "nesting too deep"); return why; }
      memcpy(stack[depth], name, len);
      stack[depth][len] = 0;
      depth++;
    } else if (depth == 0) {
      roots++;
    }
    p = end + 1;
  }
  if (depth != 0) { snprintf(why, cap, "%d unclosed tags, innermost <%s>", depth, stack[depth - 1]); return why; }
  if (roots != 1) { snprintf(why, cap, "%d root elements", roots); return why; }
  return NULL;
}

static void test_malloc_info(void) {
  /* a few live blocks of each kind so the numbers are not all zero */
  void *a = malloc(100), *b = malloc(V(50000)), *c = malloc(V(2 << 20));
  FILE *f = tmpfile();
  REQUIRE(f != NULL, "tmpfile");
  int r = malloc_info(0, f);
  CHECK(r == 0, "malloc_info(0, fp) = %d", r);
  fflush(f);
  long len = ftell(f);
  CHECK(len > 20, "malloc_info wrote %ld bytes", len);
  char *text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
  REQUIRE(text != NULL, "calloc");
  rewind(f);
  size_t n = fread(text, 1, (size_t)len, f);
  text[n] = 0;
  fclose(f);
  CHECK(strncmp(text, "<malloc", 7) == 0, "malloc_info output starts with %.20s", text);
  CHECK(n >= 10 && strcmp(text + n - 10, "</malloc>\n") == 0, "malloc_info output ends with %.20s",
        n >= 20 ? text + n - 20 : text);
  char why[160];
  const char *bad = check_xml(text, why, sizeof why);
  CHECK(bad == NULL, "malloc_info XML is not well formed: %s", bad ? bad : "");
  free(text);
  /* the checker itself rejects broken input */
  CHECK(check_xml("<malloc><heap></malloc>\n", why, sizeof why) != NULL, "xml checker accepted mismatched tags");
  CHECK(check_xml("<malloc a=\"1/>\n", why, sizeof why) != NULL, "xml checker accepted an unterminated quote");
  CHECK(check_xml("<malloc><x/></malloc>\n", why, sizeof why) == NULL, "xml checker rejected good XML");

  FILE *g = tmpfile();
  errno = 0;
  r = malloc_info(1, g);
  /* an unknown option fails: glibc returns EINVAL, swiftmalloc -1 with errno
   * EINVAL (the man page's wording) */
  if (ours) CHECK(r == -1 && errno == EINVAL, "malloc_info(1, fp) = %d errno %d, want -1 EINVAL", r, errno);
  else CHECK(r != 0, "malloc_info(1, fp) = %d, want an error", r);
  fclose(g);
  free(a);
  free(b);
  free(c);
}

int main(void) {
  t_init("mallopt_stats");
  test_default_threshold();
  test_mallopt();
  test_mallinfo2();
  test_malloc_stats();
  test_malloc_info();
  return t_finish();
}
