# Tests/stress/stress.mk: stress tests with system tools (included by the
# top-level Makefile; see Tests/stress/run.sh and README "Stress testing").
#
#   make stress                 stress-ng (every stressor, both libraries),
#                               redis + redis-benchmark with BGSAVE forks,
#                               memcached, a 3-minute soak (default library)
#                               and a 1-minute one (secure); ~15 minutes
#                               STRESS_SECONDS=N per stress-ng run (8),
#                               SOAK_MINUTES=N for the soak (3)
#   make stress-short           the short form `make test` runs (~2.5 minutes)
#   make soak MINUTES=N         the soak alone, N minutes (10);
#                               SOAK_KIND=secure for the secure library
#
# Each installs what it needs from Debian when missing (stress-ng,
# redis-server, redis-tools, memcached). Results: build/tests/stress/.

.PHONY: stress stress-short soak

stress: all
	STRESS_SECONDS=$(or $(STRESS_SECONDS),8) SOAK_MINUTES=$(or $(SOAK_MINUTES),3) bash Tests/stress/run.sh

stress-short: all
	bash Tests/stress/run.sh --short

soak: all
	bash Tests/stress/soak.sh $(or $(MINUTES),10) $(or $(SOAK_KIND),default)
