# Tests/tests.mk: the test targets (included by the top-level Makefile).
#
#   make test          everything: check-symbols, the size-class table check,
#                      swift test, the C tests (preloaded and static) and the
#                      real programs; ends with "N passed, M failed" (N, M
#                      over the C and real-program checks); non-zero on any
#                      failure
#   make c-tests       Tests/C/*.c, each preloaded and statically linked
#   make c-tests-glibc the same tests against plain glibc (validates the tests)
#   make real-tests    python3, sort, git, gcc, sqlite3 preloaded, output checked
#   make swift-test    swift test (the hosted build of the core)

TEST_COUNTS := $(BUILD)/tests

.PHONY: test c-tests c-tests-glibc real-tests swift-test

swift-test:
	swift test

c-tests: all
	bash Tests/C/run.sh

c-tests-glibc: all
	bash Tests/C/run.sh -m glibc

real-tests: all
	bash Tests/programs/run.sh

# Every step runs even when an earlier one failed; the exit status reports all.
test: all
	@mkdir -p $(TEST_COUNTS); rm -f $(TEST_COUNTS)/c-tests.counts $(TEST_COUNTS)/real-tests.counts; \
	bad=""; \
	echo "== check-symbols"; \
	sh tools/check-symbols.sh $(LIB_SO) || bad="$$bad check-symbols"; \
	if [ -f $(LIB_SECURE) ]; then sh tools/check-symbols.sh $(LIB_SECURE) || bad="$$bad check-symbols-secure"; fi; \
	echo "== size classes"; \
	python3 tools/gen_size_classes.py --check || bad="$$bad gen_size_classes"; \
	echo "== swift test"; \
	swift test > $(TEST_COUNTS)/swift-test.log 2>&1 || { bad="$$bad swift-test"; tail -n 30 $(TEST_COUNTS)/swift-test.log; }; \
	tail -n 2 $(TEST_COUNTS)/swift-test.log; \
	echo "== C tests"; \
	bash Tests/C/run.sh || bad="$$bad c-tests"; \
	echo "== real programs"; \
	bash Tests/programs/run.sh || bad="$$bad real-tests"; \
	passed=0; failed=0; \
	for suite in c-tests real-tests; do \
	  if [ -f $(TEST_COUNTS)/$$suite.counts ]; then \
	    read p f < $(TEST_COUNTS)/$$suite.counts; passed=$$((passed + p)); failed=$$((failed + f)); \
	  else failed=$$((failed + 1)); bad="$$bad $$suite(no-results)"; fi; \
	done; \
	if [ -n "$$bad" ]; then echo "failed steps:$$bad"; fi; \
	echo "$$passed passed, $$failed failed"; \
	[ -z "$$bad" ] && [ $$failed -eq 0 ]
