#!/bin/sh
# Fails unless the shipped library is what a preloaded allocator must be:
# it links only libc, imports nothing that needs the Swift runtime or can
# recurse into malloc, imports C++ runtime names (cxx.c: std::get_new_handler,
# std::__throw_bad_alloc) only weakly, so that a C program without libstdc++
# still loads it, and exports only the public names.
set -eu
lib=${1:-build/libswiftmalloc.so}
fail=0
deps=$(ldd "$lib" | grep -vE 'linux-vdso|libc\.so|ld-linux' || true)
if [ -n "$deps" ]; then echo "check-symbols: $lib links more than libc:"; echo "$deps"; fail=1; fi
undef=$(nm -D --undefined-only "$lib" | awk '{print $2}' | sed 's/@.*//')
bad=$(echo "$undef" | grep -E '^(swift_|_swift|\$s)|^(posix_memalign|malloc|free|calloc|realloc|aligned_alloc|memalign|dlsym|dlopen|getenv)$' || true)
if [ -n "$bad" ]; then echo "check-symbols: $lib imports symbols that recurse or need the Swift runtime:"; echo "$bad"; fail=1; fi
strong_cxx=$(nm -D --undefined-only "$lib" | awk '$1 == "U" && $2 ~ /^_Z/ {print $2}')
if [ -n "$strong_cxx" ]; then echo "check-symbols: $lib imports C++ runtime symbols strongly (a C program could not load it):"; echo "$strong_cxx"; fail=1; fi
defined=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//')
public='^(malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|free_sized|free_aligned_sized|mallopt|malloc_trim|mallinfo|mallinfo2|malloc_stats|malloc_info|__libc_(malloc|free|calloc|realloc|memalign|valloc|pvalloc)|cfree|mallctl|swm_[a-z_0-9]+|_Z(nw|na)m(RKSt9nothrow_t|St11align_val_t|St11align_val_tRKSt9nothrow_t)?|_Z(dl|da)Pvm?(St11align_val_t)?|_Z(dl|da)Pv(St11align_val_t)?RKSt9nothrow_t)$'
extra=$(echo "$defined" | grep -vE "$public" || true)
if [ -n "$extra" ]; then echo "check-symbols: $lib exports more than the public names:"; echo "$extra" | head -20; fail=1; fi
for name in malloc free calloc realloc posix_memalign malloc_usable_size mallinfo2 __libc_malloc __libc_free cfree swm_malloc swm_version \
            _Znwm _Znam _ZnwmSt11align_val_t _ZdlPv _ZdlPvm _ZdlPvmSt11align_val_t _ZdaPvmSt11align_val_t; do
  echo "$defined" | grep -qx "$name" || { echo "check-symbols: $lib does not export $name"; fail=1; }
done
# After --gc-sections nothing of the embedded runtime may remain: if it
# does, some code path allocates through it (swift_allocObject -> posix_memalign).
runtime=$(nm "$lib" 2>/dev/null | awk '{print $NF}' | grep -E '^swift_' || true)
if [ -n "$runtime" ]; then echo "check-symbols: $lib still contains Swift runtime entry points (reachable from our code):"; echo "$runtime" | head; fail=1; fi
[ $fail -eq 0 ] && echo "check-symbols: $lib links only libc, imports $(echo "$undef" | grep -vc '^_Z') libc symbols and $(echo "$undef" | grep -c '^_Z') C++ runtime names weakly, exports $(echo "$defined" | wc -l) public names"
exit $fail
