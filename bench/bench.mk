# bench/bench.mk: `make bench`, the side-by-side allocator benchmark.
# Included from the top-level Makefile; see bench/README.md.
#
#   make bench            full run (5 runs per workload and allocator, ~10 min)
#   make bench QUICK=1    sanity pass (1 run, reduced sizes, < 2 min)
#   make bench SECURE=0   without the secure build (it runs by default)
#   make bench-pools      only bench/pools_bench.c (slab cache, region pool vs malloc)
#   make bench BENCH_ARGS='--only larson-t1,large --runs 3'   any run.py option

BENCH_OUT    := $(BUILD)/bench
BENCH_CC     ?= gcc
BENCH_CFLAGS ?= -O2 -pthread -Wall -Wextra
BENCH_PYTHON ?= python3
BENCH_ARGS   ?=
QUICK        ?=
# SECURE=1 (the default) also runs libswiftmalloc-secure.so as swiftmalloc-secure
SECURE       ?= 1
BENCH_LIBDIR := /usr/lib/$(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BENCH_PEERS  := $(BENCH_LIBDIR)/libjemalloc.so.2 $(BENCH_LIBDIR)/libtcmalloc_minimal.so.4 \
                $(BENCH_LIBDIR)/libmimalloc.so.2

.PHONY: bench bench-peers bench-pools

$(BENCH_OUT)/wl: bench/workloads.c
	@mkdir -p $(BENCH_OUT)
	$(BENCH_CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_OUT)/pools_bench: bench/pools_bench.c $(LIB_A) $(HEADER)
	@mkdir -p $(BENCH_OUT)
	$(BENCH_CC) $(BENCH_CFLAGS) -I $(BUILD)/include -o $@ $< $(LIB_A)

# The pool family against malloc (slab cache, region pool); also run by bench.
bench-pools: all $(BENCH_OUT)/pools_bench
	$(BENCH_OUT)/pools_bench | tee $(BENCH_OUT)/pools.txt

# Install the peer allocators only when one of their .so files is missing.
# A failed install is not fatal: the driver marks missing allocators.
bench-peers:
	@missing=""; for f in $(BENCH_PEERS); do [ -e "$$f" ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  echo "bench: missing peer allocators:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
	  { $$sudo apt-get update && $$sudo apt-get install -y libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0; } \
	    || echo "bench: could not install the peers; they will be reported as MISSING"; \
	fi

bench: all bench-peers $(BENCH_OUT)/wl $(BENCH_OUT)/pools_bench
	$(BENCH_PYTHON) bench/run.py --lib $(LIB_SO) --wl $(BENCH_OUT)/wl --measure $(CLI) --out $(BENCH_OUT) \
	  $(if $(filter-out 0 no false,$(SECURE)),--secure-lib $(LIB_SECURE)) \
	  $(if $(filter-out 0 no false,$(QUICK)),--quick) $(BENCH_ARGS)
	@echo "== the pool family against malloc (bench/pools_bench.c)"
	$(BENCH_OUT)/pools_bench | tee $(BENCH_OUT)/pools.txt
