// Tests/cxx/operators.cc: the replaceable C++ allocation functions
// (Sources/CShim/exports/cxx.c) checked from a C++17 program.
//
// Tests/cxx/run.sh runs it in four modes (SWM_CXX_MODE):
//   preload  LD_PRELOAD=build/libswiftmalloc.so
//   secure   LD_PRELOAD=build/libswiftmalloc-secure.so
//   static   linked with build/libswiftmalloc.a; the program itself names
//            no malloc function, only new and delete: the archive's
//            operators (cxx_a.o) come in for operator new, the core with them
//   glibc    no swiftmalloc at all: validates the test against libstdc++'s
//            operators; the swiftmalloc-only checks (where the operators
//            live, the misuse stops) are skipped
//
// SWM_CXX_EXACT_SIZES=1 turns on the checks that need an exact sized delete
// (a size below the block's class must abort too); without it their outcome
// is printed as a NOTE and not counted.
#include <atomic>
#include <cstdarg>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

// Present when swiftmalloc's exports are in the process. Weak: the program
// must not pull them out of libswiftmalloc.a itself.
extern "C" std::size_t swm_usable_size(void *) __attribute__((weak));

namespace {

std::atomic<int> checks{0}, failures{0};
std::string mode;
bool ours = false;   // the operators are swiftmalloc's
bool exact_sizes = false;

void check(bool ok, const char *text, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void check(bool ok, const char *text, const char *file, int line, const char *fmt, ...) {
  checks++;
  if (ok) return;
  failures++;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "FAIL %s:%d: %s: %s\n", file, line, text, msg);
}
#define CHECK(cond, ...) check(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)

// Keeps the optimiser from eliding a new/delete pair or folding a size.
inline void *sink(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}
inline std::size_t V(std::size_t n) {
  volatile std::size_t v = n;
  return v;
}
inline bool aligned(const void *p, std::size_t a) {
  return (reinterpret_cast<std::uintptr_t>(sink(const_cast<void *>(p))) & (a - 1)) == 0;
}
const std::size_t huge = SIZE_MAX / 2;

// The block really is swiftmalloc's (swm_usable_size aborts on a foreign
// pointer) and at least n bytes. Only where swm_usable_size is reachable.
void check_ours(void *p, std::size_t n, const char *what) {
  if (!ours || !swm_usable_size) return;
  std::size_t u = swm_usable_size(p);
  CHECK(u >= n, "%s: swm_usable_size %zu < %zu", what, u, n);
}

// MARK: where the operators come from

template <class F> const void *addr(F f) { return reinterpret_cast<const void *>(f); }

void test_where() {
  using std::align_val_t;
  using std::nothrow_t;
  using std::size_t;
  struct Op { const char *name; const void *fn; };
  const Op ops[] = {
      {"new", addr(static_cast<void *(*)(size_t)>(&::operator new))},
      {"new[]", addr(static_cast<void *(*)(size_t)>(&::operator new[]))},
      {"new nothrow", addr(static_cast<void *(*)(size_t, const nothrow_t &) noexcept>(&::operator new))},
      {"new[] nothrow", addr(static_cast<void *(*)(size_t, const nothrow_t &) noexcept>(&::operator new[]))},
      {"new aligned", addr(static_cast<void *(*)(size_t, align_val_t)>(&::operator new))},
      {"new[] aligned", addr(static_cast<void *(*)(size_t, align_val_t)>(&::operator new[]))},
      {"new aligned nothrow", addr(static_cast<void *(*)(size_t, align_val_t, const nothrow_t &) noexcept>(&::operator new))},
      {"new[] aligned nothrow", addr(static_cast<void *(*)(size_t, align_val_t, const nothrow_t &) noexcept>(&::operator new[]))},
      {"delete", addr(static_cast<void (*)(void *) noexcept>(&::operator delete))},
      {"delete[]", addr(static_cast<void (*)(void *) noexcept>(&::operator delete[]))},
      {"delete sized", addr(static_cast<void (*)(void *, size_t) noexcept>(&::operator delete))},
      {"delete[] sized", addr(static_cast<void (*)(void *, size_t) noexcept>(&::operator delete[]))},
      {"delete aligned", addr(static_cast<void (*)(void *, align_val_t) noexcept>(&::operator delete))},
      {"delete[] aligned", addr(static_cast<void (*)(void *, align_val_t) noexcept>(&::operator delete[]))},
      {"delete sized aligned", addr(static_cast<void (*)(void *, size_t, align_val_t) noexcept>(&::operator delete))},
      {"delete[] sized aligned", addr(static_cast<void (*)(void *, size_t, align_val_t) noexcept>(&::operator delete[]))},
      {"delete nothrow", addr(static_cast<void (*)(void *, const nothrow_t &) noexcept>(&::operator delete))},
      {"delete[] nothrow", addr(static_cast<void (*)(void *, const nothrow_t &) noexcept>(&::operator delete[]))},
      {"delete aligned nothrow", addr(static_cast<void (*)(void *, align_val_t, const nothrow_t &) noexcept>(&::operator delete))},
      {"delete[] aligned nothrow", addr(static_cast<void (*)(void *, align_val_t, const nothrow_t &) noexcept>(&::operator delete[]))},
  };
  Dl_info self{};
  CHECK(dladdr(reinterpret_cast<const void *>(&test_where), &self) != 0, "dladdr of the program");
  for (const Op &op : ops) {
    Dl_info info{};
    if (!dladdr(op.fn, &info) || !info.dli_fname) {
      CHECK(false, "operator %s: dladdr found no object", op.name);
      continue;
    }
    std::string file = info.dli_fname;
    if (mode == "preload")
      CHECK(file.find("/libswiftmalloc.so") != std::string::npos, "operator %s is in %s", op.name, file.c_str());
    else if (mode == "secure")
      CHECK(file.find("/libswiftmalloc-secure.so") != std::string::npos, "operator %s is in %s", op.name, file.c_str());
    else if (mode == "static")
      CHECK(info.dli_fbase == self.dli_fbase, "operator %s is in %s, not the program", op.name, file.c_str());
    else
      CHECK(file.find("libstdc++") != std::string::npos, "operator %s is in %s", op.name, file.c_str());
  }
  // Preloaded, swm_usable_size is there. Linked from the archive, it is
  // there only if the core pulled the archive's exports in (it does today:
  // the core references free); the program itself names only new and delete
  // (run.sh checks its object).
  if (mode == "preload" || mode == "secure") CHECK(swm_usable_size != nullptr, "swm_usable_size missing while preloaded");
}

// MARK: alignment of new, new[] and aligned new

void test_default_alignment() {
  static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16, "x86_64 and aarch64: 16");
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 1100; n++) sizes.push_back(n);
  for (std::size_t n : {4095, 4096, 4097, 65536, 131072, 200000, 1 << 21}) sizes.push_back(n);
  for (std::size_t n : sizes) {
    void *p = sink(::operator new(V(n)));
    void *q = sink(::operator new[](V(n)));
    CHECK(p && aligned(p, __STDCPP_DEFAULT_NEW_ALIGNMENT__), "new(%zu) = %p", n, p);
    CHECK(q && aligned(q, __STDCPP_DEFAULT_NEW_ALIGNMENT__), "new[](%zu) = %p", n, q);
    std::memset(p, 0xa5, n);
    std::memset(q, 0x5a, n);
    check_ours(p, n, "new");
    check_ours(q, n, "new[]");
    if (n % 3) {
      ::operator delete(p, n);
      ::operator delete[](q, n);
    } else {
      ::operator delete(p);
      ::operator delete[](q);
    }
  }
  void *a = sink(::operator new(V(0))), *b = sink(::operator new(V(0)));
  CHECK(a && b && a != b, "new(0) gives unique pointers: %p %p", a, b);
  ::operator delete(a);
  ::operator delete(b, std::size_t(0));
  long double *ld = static_cast<long double *>(sink(new long double(1.5L)));
  CHECK(aligned(ld, alignof(long double)), "new long double = %p", static_cast<void *>(ld));
  delete ld;
}

struct alignas(256) Over256 { char c[300]; };
struct alignas(4096) OverPage { int v; };
struct alignas(64) Counted {  // non-trivial destructor: new[] stores a cookie
  static inline int live = 0;
  int v;
  Counted() : v(7) { live++; }
  ~Counted() { live--; }
};

void test_aligned_new() {
  std::vector<std::size_t> aligns;
  for (std::size_t a = 1; a <= 4096; a *= 2) aligns.push_back(a);
  aligns.push_back(std::size_t(1) << 16);
  aligns.push_back(std::size_t(1) << 20);
  int form = 0;
  for (std::size_t a : aligns) {
    for (std::size_t n : {std::size_t(1), a, 3 * a + 5, std::size_t(100000)}) {
      std::align_val_t al{a};
      void *p[4] = {sink(::operator new(V(n), al)), sink(::operator new[](V(n), al)),
                    sink(::operator new(V(n), al, std::nothrow)), sink(::operator new[](V(n), al, std::nothrow))};
      for (int i = 0; i < 4; i++) {
        CHECK(p[i] && aligned(p[i], a), "aligned new form %d (%zu, align %zu) = %p", i, n, a, p[i]);
        if (!p[i]) continue;
        std::memset(p[i], i, n);
        check_ours(p[i], n, "aligned new");
      }
      // Each form of aligned delete in turn.
      switch (form++ % 3) {
        case 0:
          ::operator delete(p[0], al);
          ::operator delete[](p[1], al);
          ::operator delete(p[2], al, std::nothrow);
          ::operator delete[](p[3], al, std::nothrow);
          break;
        case 1:
          ::operator delete(p[0], n, al);
          ::operator delete[](p[1], n, al);
          ::operator delete(p[2], n, al);
          ::operator delete[](p[3], n, al);
          break;
        default:
          ::operator delete(p[0], al, std::nothrow);
          ::operator delete[](p[1], al, std::nothrow);
          ::operator delete(p[2], al);
          ::operator delete[](p[3], al);
      }
    }
  }
  // Over-aligned types: the compiler picks the aligned (and sized) forms.
  Over256 *x = static_cast<Over256 *>(sink(new Over256));
  CHECK(aligned(x, 256), "new Over256 = %p", static_cast<void *>(x));
  check_ours(x, sizeof *x, "new Over256");
  delete x;
  Over256 *xs = static_cast<Over256 *>(sink(new Over256[7]));
  CHECK(aligned(xs, 256), "new Over256[7] = %p", static_cast<void *>(xs));
  delete[] xs;
  OverPage *pg = static_cast<OverPage *>(sink(new OverPage{3}));
  CHECK(aligned(pg, 4096), "new OverPage = %p", static_cast<void *>(pg));
  delete pg;
  Counted *cs = static_cast<Counted *>(sink(new Counted[5]));
  CHECK(aligned(cs, 64) && Counted::live == 5 && cs[4].v == 7, "new Counted[5] = %p", static_cast<void *>(cs));
  delete[] cs;  // sized aligned delete[] with the cookie in the size
  CHECK(Counted::live == 0, "live %d", Counted::live);
}

// MARK: nothrow, bad_alloc, new_handler

int handler_calls = 0;
int handler_limit = 0;
void counting_handler() {
  if (++handler_calls >= handler_limit) std::set_new_handler(nullptr);
}
void throwing_handler() {
  handler_calls++;
  throw std::bad_alloc();
}
struct Custom { int tag; };
void custom_throwing_handler() {
  handler_calls++;
  throw Custom{42};
}

// The four throwing forms and the four nothrow forms, for an impossible size.
void *throwing_form(int i, std::size_t n) {
  switch (i) {
    case 0: return ::operator new(n);
    case 1: return ::operator new[](n);
    case 2: return ::operator new(n, std::align_val_t(64));
    default: return new (std::align_val_t(4096)) char[n];
  }
}
void *nothrow_form(int i, std::size_t n) {
  switch (i) {
    case 0: return ::operator new(n, std::nothrow);
    case 1: return new (std::nothrow) char[n];
    case 2: return ::operator new(n, std::align_val_t(64), std::nothrow);
    default: return ::operator new[](n, std::align_val_t(4096), std::nothrow);
  }
}

void test_nothrow_and_bad_alloc() {
  CHECK(std::get_new_handler() == nullptr, "a new_handler is installed at start");
  for (int i = 0; i < 4; i++) {
    void *p = sink(nothrow_form(i, V(huge)));
    CHECK(p == nullptr, "nothrow form %d of an impossible size = %p", i, p);
    bool caught = false;
    try {
      sink(throwing_form(i, V(huge)));
    } catch (const std::bad_alloc &e) {
      caught = typeid(e) == typeid(std::bad_alloc) && e.what() != nullptr;
    }
    CHECK(caught, "form %d of an impossible size throws std::bad_alloc", i);
  }
  // An alignment that is not a power of two (undefined in C++; libstdc++
  // and swiftmalloc both refuse it): bad_alloc, or NULL from nothrow.
  bool caught = false;
  try {
    sink(::operator new(V(64), std::align_val_t(V(48))));
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught, "new(64, align 48) throws bad_alloc");
  CHECK(::operator new(V(64), std::align_val_t(V(48)), std::nothrow) == nullptr, "nothrow new(64, align 48)");
}

void test_new_handler() {
  // A handler that gives up after three calls: called in the loop, then
  // bad_alloc (throwing forms) or NULL (nothrow forms, which call it too).
  for (int i = 0; i < 4; i++) {
    handler_calls = 0;
    handler_limit = 3;
    std::set_new_handler(counting_handler);
    bool caught = false;
    try {
      sink(throwing_form(i, V(huge)));
    } catch (const std::bad_alloc &) {
      caught = true;
    }
    CHECK(caught && handler_calls == 3, "form %d: caught %d, handler called %d times", i, caught, handler_calls);
    handler_calls = 0;
    std::set_new_handler(counting_handler);
    void *p = sink(nothrow_form(i, V(huge)));
    CHECK(p == nullptr && handler_calls == 3, "nothrow form %d: %p, handler called %d times", i, p, handler_calls);
    CHECK(std::get_new_handler() == nullptr, "handler uninstalled");
  }
  // A handler that throws: the exception passes through the operator.
  handler_calls = 0;
  std::set_new_handler(throwing_handler);
  bool caught = false;
  try {
    sink(::operator new(V(huge)));
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught && handler_calls == 1, "handler's bad_alloc: caught %d, calls %d", caught, handler_calls);
  handler_calls = 0;
  std::set_new_handler(custom_throwing_handler);
  int tag = 0;
  try {
    sink(::operator new[](V(huge), std::align_val_t(128)));
  } catch (const Custom &c) {
    tag = c.tag;
  }
  CHECK(tag == 42 && handler_calls == 1, "handler's own exception: tag %d, calls %d", tag, handler_calls);
  std::set_new_handler(nullptr);
}

// The standard's use of a new_handler: free a reserve, and the retry
// succeeds. Real exhaustion, under RLIMIT_AS, in a child process.
void *reserve = nullptr;
int reserve_calls = 0;
void release_reserve() {
  reserve_calls++;
  ::operator delete(reserve);
  reserve = nullptr;
  std::set_new_handler(nullptr);
}

std::size_t vm_bytes() {
  char buf[128] = {0};
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  return std::strtoull(buf, nullptr, 10) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

void test_handler_frees_reserve() {
  const std::size_t MiB = std::size_t(1) << 20;
  pid_t pid = fork();
  if (pid == 0) {
    reserve = sink(::operator new(V(64 * MiB)));
    std::memset(reserve, 1, 64 * MiB);
    std::size_t vm = vm_bytes();
    if (!vm) _exit(10);
    struct rlimit rl = {vm + 96 * MiB, vm + 96 * MiB};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(11);
    std::set_new_handler(release_reserve);
    void *p = nullptr;
    try {
      p = sink(::operator new(V(128 * MiB)));
    } catch (const std::bad_alloc &) {
      _exit(12);
    }
    if (reserve_calls != 1) _exit(13);
    std::memset(p, 2, 128 * MiB);
    ::operator delete(p, 128 * MiB);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  const char *why[] = {"", "", "", "", "", "", "", "", "", "", "statm unreadable", "setrlimit failed",
                       "bad_alloc although the handler freed the reserve", "handler not called exactly once"};
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  CHECK(code == 0, "child: %s (status 0x%x)", code >= 10 && code <= 13 ? why[code] : "died", status);
}

// MARK: sized delete, NULL

struct Base { long a, b; };
struct Derived : Base { char big[5000 - sizeof(Base)]; };
struct VBase { virtual ~VBase() = default; long a; };
struct VDerived : VBase { char big[5000]; };

void test_sized_delete() {
  for (std::size_t n : {1, 8, 16, 17, 64, 100, 1000, 5000, 32768, 65536, 131072, 200000, 1 << 21}) {
    void *p = sink(::operator new(V(n)));
    ::operator delete(p, n);
    p = sink(::operator new[](V(n)));
    ::operator delete[](p, n);
  }
  VBase *v = static_cast<VBase *>(sink(new VDerived));  // deleting destructor: sizeof(VDerived)
  delete v;
  Derived *d = static_cast<Derived *>(sink(new Derived));
  delete d;
  std::string s(10000, 'x');  // the library's own new/delete (std::string)
  s += s;
  CHECK(s.size() == 20000, "std::string");
  std::vector<int> vec;
  for (int i = 0; i < 100000; i++) vec.push_back(i);
  CHECK(vec[99999] == 99999, "std::vector");

  // delete of NULL does nothing, in every form.
  std::align_val_t al{64};
  ::operator delete(nullptr);
  ::operator delete[](nullptr);
  ::operator delete(nullptr, std::size_t(16));
  ::operator delete[](nullptr, std::size_t(16));
  ::operator delete(nullptr, al);
  ::operator delete[](nullptr, al);
  ::operator delete(nullptr, std::size_t(16), al);
  ::operator delete[](nullptr, std::size_t(16), al);
  ::operator delete(nullptr, std::nothrow);
  ::operator delete[](nullptr, std::nothrow);
  ::operator delete(nullptr, al, std::nothrow);
  ::operator delete[](nullptr, al, std::nothrow);
  ::operator delete(nullptr, std::align_val_t(48));  // even with a bad alignment
  Over256 *none = nullptr;
  delete none;
  CHECK(true, "delete of NULL");
}

// MARK: misuse stops (swiftmalloc only)

// Runs `fn` in a child with stderr captured. The child first announces the
// line it expects ("EXPECT <line>"), then misbehaves. Returns 1 when the child
// died of SIGABRT with that line on stderr, 0 when it exited normally, -1
// otherwise (reported).
using Misuse = void (*)(char *expect, std::size_t cap);
int run_misuse(const char *name, Misuse fn) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    char expect[256] = {0};
    fn(expect, sizeof expect);  // fills `expect`, announces it, misbehaves
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  std::string expect;
  std::size_t at = out.find("EXPECT ");
  if (at != std::string::npos) expect = out.substr(at + 7, out.find('\n', at) - at - 7);
  bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && !expect.empty() &&
            out.find("\n" + expect + "\n") != std::string::npos;
  CHECK(ok, "%s: status 0x%x, expected \"%s\", got: %s", name, status, expect.c_str(), out.c_str());
  return ok ? 1 : -1;
}

void announce(char *expect, std::size_t cap, const char *call, const char *problem, const void *p) {
  snprintf(expect, cap, "swiftmalloc: %s: %s 0x%lx", call, problem, static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(p)));
  dprintf(2, "EXPECT %s\n", expect);
}

// A 16-aligned block that is not 4096-aligned.
void *unaligned_for_page() {
  for (;;) {
    void *p = sink(::operator new(V(48)));
    if (!aligned(p, 4096)) return p;
  }
}

const struct {
  const char *name;
  Misuse fn;
} misuses[] = {
    {"sized delete larger than the block", [](char *e, std::size_t c) {
       void *p = sink(::operator new(V(64)));
       announce(e, c, "free_sized()", "size mismatch for", p);
       ::operator delete(p, V(5000));
     }},
    {"sized delete[] larger than the block", [](char *e, std::size_t c) {
       char *p = static_cast<char *>(sink(new char[V(100)]));
       announce(e, c, "free_sized()", "size mismatch for", p);
       ::operator delete[](p, V(100000));
     }},
    {"sized delete of a page run with half its size", [](char *e, std::size_t c) {
       void *p = sink(::operator new(V(200000)));
       announce(e, c, "free_sized()", "size mismatch for", p);
       ::operator delete(p, V(100000));
     }},
    {"sized aligned delete with a wrong size", [](char *e, std::size_t c) {
       void *p = sink(::operator new(V(64), std::align_val_t(64)));
       announce(e, c, "free_aligned_sized()", "size mismatch for", p);
       ::operator delete(p, V(100000), std::align_val_t(64));
     }},
    {"aligned delete claiming 4096 for a 16-aligned block", [](char *e, std::size_t c) {
       void *p = unaligned_for_page();
       announce(e, c, "operator delete()", "alignment mismatch for", p);
       ::operator delete(p, std::align_val_t(4096));
     }},
    {"sized aligned delete[] claiming 4096", [](char *e, std::size_t c) {
       void *p = unaligned_for_page();
       announce(e, c, "operator delete[]()", "alignment mismatch for", p);
       ::operator delete[](p, V(48), std::align_val_t(4096));
     }},
    {"aligned nothrow delete with alignment 48", [](char *e, std::size_t c) {
       void *p = sink(::operator new(V(64), std::align_val_t(64)));
       announce(e, c, "operator delete()", "alignment mismatch for", p);
       ::operator delete(p, std::align_val_t(V(48)), std::nothrow);
     }},
    {"double delete", [](char *e, std::size_t c) {
       int *p = static_cast<int *>(sink(new int(1)));
       announce(e, c, "free_sized()", "double free of", p);
       delete p;
       delete static_cast<int *>(sink(p));
     }},
    {"delete[] of a pointer into the middle of a block", [](char *e, std::size_t c) {
       char *p = static_cast<char *>(sink(new char[V(256)])) + 32;
       announce(e, c, "free()", "invalid pointer", p);
       ::operator delete[](sink(p));
     }},
};

// Sizes below the block's class: stopped once the engine's sized free is
// exact (SWM_CXX_EXACT_SIZES=1).
const struct {
  const char *name;
  Misuse fn;
} exact_misuses[] = {
    {"delete through a base without virtual destructor (5000-byte object, size 16)", [](char *e, std::size_t c) {
       Base *b = static_cast<Base *>(sink(new Derived));
       announce(e, c, "free_sized()", "size mismatch for", b);
       delete b;  // undefined: sized delete gets sizeof(Base)
     }},
    {"sized delete of a 5000-byte block with size 64", [](char *e, std::size_t c) {
       void *p = sink(::operator new(V(5000)));
       announce(e, c, "free_sized()", "size mismatch for", p);
       ::operator delete(p, V(64));
     }},
};

void test_misuse() {
  if (!ours) return;
  for (const auto &m : misuses) {
    int r = run_misuse(m.name, m.fn);
    if (r == 0) CHECK(false, "%s: the child did not stop", m.name);
  }
  for (const auto &m : exact_misuses) {
    if (exact_sizes) {
      if (run_misuse(m.name, m.fn) == 0) CHECK(false, "%s: the child did not stop", m.name);
      continue;
    }
    int saved = failures;
    int r = run_misuse(m.name, m.fn);
    failures = saved;  // reported, not counted
    checks--;
    printf("NOTE %s: %s (counted with SWM_CXX_EXACT_SIZES=1)\n", m.name,
           r == 1 ? "stopped as expected" : r == 0 ? "not stopped yet" : "stopped differently");
  }
}

// MARK: threads

void test_threads() {
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([t, &bad] {
      std::uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
      std::vector<std::pair<void *, std::size_t>> live;
      for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::size_t n = (x >> 20) % 3000 + 1;
        std::size_t a = std::size_t(16) << (x % 5);
        void *p = (x & 64) ? ::operator new(n, std::align_val_t(a)) : ::operator new(n);
        if (!aligned(p, (x & 64) ? a : 16)) bad++;
        static_cast<char *>(p)[n - 1] = 1;
        live.emplace_back(p, (x & 64) ? n | (a << 32) : n);
        if (live.size() > 64 || (x & 128)) {
          auto [q, tagged] = live.back();
          live.pop_back();
          std::size_t qa = tagged >> 32, qn = tagged & 0xffffffff;
          if (qa) ::operator delete(q, qn, std::align_val_t(qa));
          else ::operator delete(q, qn);
        }
      }
      for (auto [q, tagged] : live) {
        std::size_t qa = tagged >> 32;
        if (qa) ::operator delete(q, std::align_val_t(qa));
        else ::operator delete(q);
      }
    });
  }
  for (auto &t : ts) t.join();
  CHECK(bad == 0, "%d misaligned blocks from threads", bad.load());
}

}  // namespace

int main() {
  const char *m = std::getenv("SWM_CXX_MODE");
  mode = m ? m : "glibc";
  ours = mode != "glibc";
  const char *ex = std::getenv("SWM_CXX_EXACT_SIZES");
  exact_sizes = !(ex && std::strcmp(ex, "0") == 0);  // the engine checks exact sizes: on unless =0
  setvbuf(stdout, nullptr, _IONBF, 0);

  test_where();
  test_default_alignment();
  test_aligned_new();
  test_nothrow_and_bad_alloc();
  test_new_handler();
  test_handler_frees_reserve();
  test_sized_delete();
  test_misuse();
  test_threads();

  printf("operators (%s): %d checks, %d failed\n", mode.c_str(), checks.load(), failures.load());
  return failures ? 1 : 0;
}
