// Tests/cxx/minimal.cc: a C++ program that uses new and delete and nothing
// else of the allocator, for the static links of libswiftmalloc.a
// (Tests/cxx/run.sh): with libstdc++ shared, with -static-libstdc++ and fully
// -static. It names neither std::set_new_handler nor any container, so only
// cxx.o's own (strong) reference brings libstdc++.a's std::__throw_bad_alloc
// into the static links: bad_alloc must still be thrown, not an abort.
//
//   minimal ours     also checks that a sized delete with a wrong size stops
//                    the program (the operators are swiftmalloc's)
//   minimal          libstdc++'s operators (mode glibc)
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <sys/wait.h>
#include <unistd.h>

struct alignas(128) Wide { char c[200]; };

static int failed = 0;
#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      failed++;                                                  \
    }                                                            \
  } while (0)

static void *sink(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

int main(int argc, char **argv) {
  bool ours = argc > 1 && std::strcmp(argv[1], "ours") == 0;
  volatile std::size_t huge = SIZE_MAX / 2, n = 5000;
  bool caught = false;
  try {
    sink(new char[huge]);
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught);
  caught = false;
  try {
    sink(::operator new(huge, std::align_val_t(256)));
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught);
  CHECK(sink(new (std::nothrow) char[huge]) == nullptr);
  int *i = static_cast<int *>(sink(new int(5)));
  CHECK(*i == 5);
  delete i;
  Wide *w = static_cast<Wide *>(sink(new Wide));
  CHECK((reinterpret_cast<std::uintptr_t>(w) & 127) == 0);
  delete w;
  char *c = static_cast<char *>(sink(new char[n]));
  std::memset(c, 1, n);
  delete[] c;
  if (ours) {  // a wrong size stops the program: these are swiftmalloc's operators
    pid_t pid = fork();
    if (pid == 0) {
      close(2);
      void *p = sink(::operator new(64));
      ::operator delete(p, 100000);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  }
  std::printf("minimal: %s\n", failed ? "FAILED" : "ok");
  return failed ? 1 : 0;
}
