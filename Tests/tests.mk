# Tests/tests.mk: the test targets (included by the top-level Makefile).
#
#   make test          everything: check-symbols, the size-class table check,
#                      swift test, the C tests (preloaded, static and secure) and the
#                      real programs; ends with "N passed, M failed" (N, M
#                      over the C and real-program checks); non-zero on any
#                      failure
#   make c-tests       Tests/C/*.c, each preloaded, statically linked and in secure mode
#   make c-tests-glibc the same tests against plain glibc (validates the tests)
#   make cxx-tests     the C++ operators (Tests/cxx): preloaded, secure, linked
#                      statically through new/delete only, and against glibc
#   make real-tests    python3, sort, git, gcc, sqlite3, a Swift program preloaded, output checked
#   make swift-test    swift test (the hosted build of the core)
#   make misuse-tests  heap misuse battery (default and secure mode), resource
#                      limits, secure mode on real programs
#   make fuzz          libFuzzer with a shadow model, FUZZ_SECONDS (600) long,
#                      over build/libswiftmalloc-check.a (invariants checked)
#   make lifecycle-tests  fork, signals, thread exit, dlclose, hooks, glibc's
#                      other names and rules (Tests/lifecycle), each preloaded,
#                      static and secure, under a watchdog
#   make perf-tests    the fast paths' instruction counts (callgrind) against
#                      Tests/perf/expected-instructions.txt
#   make install-tests make install/uninstall into a temporary DESTDIR, pkg-config,
#                      C and C++ programs built with its flags, the man page
#   make stress        stress-ng, redis, memcached, soak (Tests/stress/stress.mk);
#                      `make test` runs its short form
#   make cli-tests     the swiftmalloc command: run, compare, top, errors (Tests/cli)

TEST_COUNTS := $(BUILD)/tests

.PHONY: test c-tests c-tests-glibc cxx-tests real-tests swift-test misuse-tests fuzz perf-tests lifecycle-tests install-tests cli-tests
FUZZ_SECONDS ?= 600

misuse-tests: all
	bash Tests/misuse/run.sh

fuzz: all check-lib
	bash Tests/fuzz/run.sh $(FUZZ_SECONDS)

swift-test:
	swift test

perf-tests: all
	bash Tests/perf/run.sh

lifecycle-tests: all
	bash Tests/lifecycle/run.sh

c-tests: all
	bash Tests/C/run.sh

c-tests-glibc: all
	bash Tests/C/run.sh -m glibc

cxx-tests: all
	bash Tests/cxx/run.sh

real-tests: all
	bash Tests/programs/run.sh

install-tests: all
	bash Tests/install/run.sh

cli-tests: all
	bash Tests/cli/run.sh

# Every step runs even when an earlier one failed; the exit status reports all.
test: all check-lib
	@mkdir -p $(TEST_COUNTS); rm -f $(TEST_COUNTS)/*.counts; \
	bad=""; \
	echo "== check-symbols"; \
	sh tools/check-symbols.sh $(LIB_SO) || bad="$$bad check-symbols"; \
	if [ -f $(LIB_SECURE) ]; then sh tools/check-symbols.sh $(LIB_SECURE) || bad="$$bad check-symbols-secure"; fi; \
	echo "== size classes"; \
	python3 tools/gen_size_classes.py --check || bad="$$bad gen_size_classes"; \
	echo "== source size (files <= 400 lines, functions <= 60)"; \
	python3 tools/check-size.py || bad="$$bad check-size"; \
	echo "== fast-path instructions (callgrind)"; \
	bash Tests/perf/run.sh > $(TEST_COUNTS)/perf.log 2>&1 || bad="$$bad perf"; \
	grep -E '^(PASS|FAIL)' $(TEST_COUNTS)/perf.log; \
	echo "== swift test"; \
	swift test > $(TEST_COUNTS)/swift-test.log 2>&1 || { bad="$$bad swift-test"; tail -n 30 $(TEST_COUNTS)/swift-test.log; }; \
	tail -n 2 $(TEST_COUNTS)/swift-test.log; \
	echo "== C tests"; \
	bash Tests/C/run.sh || bad="$$bad c-tests"; \
	echo "== C++ operators"; \
	bash Tests/cxx/run.sh || bad="$$bad cxx"; \
	echo "== real programs"; \
	bash Tests/programs/run.sh || bad="$$bad real-tests"; \
	echo "== lifecycle: fork, signals, threads, dlclose, hooks, glibc's names and rules"; \
	bash Tests/lifecycle/run.sh > $(TEST_COUNTS)/lifecycle.log 2>&1 || bad="$$bad lifecycle"; \
	grep -E '^(FAIL|[0-9]+ passed)' $(TEST_COUNTS)/lifecycle.log | head -n 40; \
	echo "== misuse battery, resource limits, secure mode on real programs"; \
	bash Tests/misuse/run.sh > $(TEST_COUNTS)/misuse.log 2>&1 || bad="$$bad misuse"; \
	grep -E 'FAIL' $(TEST_COUNTS)/misuse.log | head -n 40; tail -n 1 $(TEST_COUNTS)/misuse.log; \
	tail -n 1 $(TEST_COUNTS)/misuse.log | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' > $(TEST_COUNTS)/misuse.counts; \
	echo "== fuzz (30 s, default and secure mode)"; \
	bash Tests/fuzz/run.sh 30 > $(TEST_COUNTS)/fuzz.log 2>&1 || bad="$$bad fuzz"; \
	grep -E 'FAIL' $(TEST_COUNTS)/fuzz.log | head -n 20; tail -n 1 $(TEST_COUNTS)/fuzz.log; \
	tail -n 1 $(TEST_COUNTS)/fuzz.log | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' > $(TEST_COUNTS)/fuzz.counts; \
	echo "== install (make install into a DESTDIR, pkg-config, C and C++ programs, man page)"; \
	bash Tests/install/run.sh > $(TEST_COUNTS)/install.log 2>&1 || bad="$$bad install"; \
	grep -E '^FAIL' -A 8 $(TEST_COUNTS)/install.log | head -n 40; tail -n 1 $(TEST_COUNTS)/install.log; \
	echo "== stress: stress-ng malloc variants, redis + BGSAVE, memcached, 1-minute soak (Tests/stress, short form)"; \
	bash Tests/stress/run.sh --short > $(TEST_COUNTS)/stress.log 2>&1 || bad="$$bad stress"; \
	grep -E '^FAIL' $(TEST_COUNTS)/stress.log | head -n 20; grep -E '^stress .* took' $(TEST_COUNTS)/stress.log; tail -n 1 $(TEST_COUNTS)/stress.log; \
	tail -n 1 $(TEST_COUNTS)/stress.log | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' > $(TEST_COUNTS)/stress.counts; \
	echo "== the swiftmalloc command (run, compare, top)"; \
	bash Tests/cli/run.sh > $(TEST_COUNTS)/cli.log 2>&1 || bad="$$bad cli"; \
	grep -E '^(FAIL|SKIP)' -A 4 $(TEST_COUNTS)/cli.log | head -n 40; tail -n 1 $(TEST_COUNTS)/cli.log; \
	passed=0; failed=0; \
	for suite in perf c-tests cxx lifecycle real-tests misuse fuzz install stress cli; do \
	  if [ -s $(TEST_COUNTS)/$$suite.counts ]; then \
	    read p f < $(TEST_COUNTS)/$$suite.counts; passed=$$((passed + p)); failed=$$((failed + f)); \
	  else failed=$$((failed + 1)); bad="$$bad $$suite(no-results)"; fi; \
	done; \
	if [ -n "$$bad" ]; then echo "failed steps:$$bad"; fi; \
	echo "$$passed passed, $$failed failed"; \
	[ -z "$$bad" ] && [ $$failed -eq 0 ]
