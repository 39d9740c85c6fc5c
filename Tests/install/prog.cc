// Tests/install/prog.cc: a C++ program built with nothing but pkg-config's
// flags (Tests/install/run.sh): new, delete and std::vector must allocate
// from swiftmalloc. It calls no swm_ function (the library must be kept
// anyway); -DSTATIC_BUILD: linked with -static.
// Prints "VERSION <v>" (from malloc_info) and "OK", or FAIL lines and exits 1.
//
// -DNEW_ONLY: a program that allocates only through new and std::vector and
// names no allocator function at all; run.sh checks with SWIFTMALLOC_STATS=1
// that swiftmalloc served it (statically linked, nothing but pkg-config's
// -u malloc pulls libswiftmalloc.a's malloc in before libstdc++.a needs one).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <malloc.h>
#include <memory>
#include <string>
#include <vector>
#include <swiftmalloc.h>

#ifdef NEW_ONLY
int main() {
  std::vector<std::string> words;
  for (int i = 0; i < 20000; i++) words.push_back("word number " + std::to_string(i));
  std::vector<char> big(4 << 20, 'x');
  int *a = new int[1000];
  a[999] = static_cast<int>(words.size()) + big[12];
  std::printf("words %zu\nOK\n", words.size());
  delete[] a;
  return 0;
}
#else
static int failures;
#define CHECK(cond, ...) \
  do { if (!(cond)) { std::printf("FAIL "); std::printf(__VA_ARGS__); std::printf("\n"); failures++; } } while (0)

struct Node {
  std::string name;
  std::unique_ptr<Node> next;
};

static std::string info_version() {
  char *text = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return "";
  int r = malloc_info(0, f);
  std::fclose(f);
  std::string out;
  const char *at = r == 0 && text ? std::strstr(text, "swiftmalloc=\"") : nullptr;
  if (at) {
    at += std::strlen("swiftmalloc=\"");
    out.assign(at, std::strcspn(at, "\""));
  }
  std::free(text);
  return out;
}

int main() {
#ifndef STATIC_BUILD
  Dl_info info;
  void *(*volatile malloc_fn)(size_t) = std::malloc;
  int found = dladdr(reinterpret_cast<void *>(malloc_fn), &info);
  CHECK(found && info.dli_fname && std::strstr(info.dli_fname, "libswiftmalloc"),
        "malloc resolves into %s, not libswiftmalloc", found && info.dli_fname ? info.dli_fname : "(unknown)");
  if (found) std::printf("MALLOC %s\n", info.dli_fname);
#endif
  // operator new (libstdc++) calls malloc: a 4 MiB vector is an mmap block
  // that swiftmalloc's mallinfo2 counts only if new reached swiftmalloc.
  struct mallinfo2 before = mallinfo2();
  {
    std::vector<char> v(4 << 20, 'x');
    struct mallinfo2 during = mallinfo2();
    CHECK(during.hblkhd >= before.hblkhd + (4 << 20),
          "mallinfo2 does not count the vector's 4 MiB (hblkhd %zu -> %zu): new did not reach swiftmalloc",
          before.hblkhd, during.hblkhd);
    // a block from new is one swiftmalloc knows (malloc_usable_size would abort otherwise)
    int *a = new int[1000];
    CHECK(malloc_usable_size(a) >= 1000 * sizeof(int), "malloc_usable_size(new int[1000]) too small");
    delete[] a;
  }
  std::unique_ptr<Node> head;
  for (int i = 0; i < 10000; i++) head.reset(new Node{"node " + std::to_string(i), std::move(head)});
  size_t count = 0;
  while (head) { head = std::move(head->next); count++; }
  CHECK(count == 10000, "list of %zu nodes", count);

  std::string version = info_version();
  CHECK(version == SWIFTMALLOC_VERSION, "malloc_info reports version '%s', the header says %s", version.c_str(),
        SWIFTMALLOC_VERSION);
  std::printf("VERSION %s\n", version.c_str());
  if (failures) return 1;
  std::printf("OK\n");
  return 0;
}
#endif
