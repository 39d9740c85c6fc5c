# swiftmalloc: builds the shipped library from Embedded Swift + a C shim.
#   make               build/libswiftmalloc.so, build/libswiftmalloc.a, build/include/swiftmalloc.h
#   make demo          build, then run real programs with the library preloaded
#   make test          every test: symbol checks, swift test, C tests (preloaded
#                      and static), real programs
#   make bench         the side-by-side benchmark (see bench/README.md)
#   make check-symbols what the .so links, imports and exports
#   make install       PREFIX=/usr/local DESTDIR= (and make uninstall): tools/install.mk
#   make lib           the libraries and header only (no Swift package build)
#
# `make` also builds the `swiftmalloc` command (build/bin/swiftmalloc, with
# its helper build/libexec/swiftmalloc/spawn) with SwiftPM: hosted Swift,
# never linked into the library. CLI_STATIC=1 links the Swift runtime and
# Foundation into it (about 75 MB) so that it runs without the toolchain.

SWIFTC  ?= swiftc
CC      ?= cc
BUILD   := build
OBJ     := $(BUILD)/obj
SHIM    := Sources/CShim
SWIFT_SOURCES := $(shell find Sources/SwiftMalloc -name '*.swift' | sort)
SHIM_SOURCES  := $(SHIM)/shim.c $(SHIM)/os.c $(SHIM)/live.c $(SHIM)/state.c $(SHIM)/pools.c $(SHIM)/secure_off.c $(SHIM)/secure/secure_on.c $(SHIM)/exports/exports.c $(SHIM)/exports/cxx.c
# exports/stats.c is part of exports.c (#include), so that a static link that
# takes malloc takes the statistics and the report at exit with it.
SHIM_HEADERS  := $(wildcard $(SHIM)/include/*.h) $(SHIM)/exports/swiftmalloc.h $(SHIM)/exports/stats.c $(SHIM)/exports/mallctl.c

SWIFTFLAGS := -enable-experimental-feature Embedded -wmo -O -parse-as-library \
              -module-name SwiftMalloc -enforce-exclusivity=unchecked \
              -I $(SHIM)/include -Xcc -fPIC -Xcc -O2 -Xllvm -enable-machine-outliner=never \
              -Xfrontend -function-sections
CFLAGS_LIB := -O2 -fPIC -ffunction-sections -fdata-sections -fno-plt -fvisibility=hidden -fno-stack-protector -Wall -Wextra \
              -I $(SHIM)/include -I $(SHIM)/exports -ftls-model=initial-exec

LIB_SO := $(BUILD)/libswiftmalloc.so
LIB_SECURE := $(BUILD)/libswiftmalloc-secure.so
# The version comes from swiftmalloc.h. Each shared library is built as
# NAME.so.MAJOR.MINOR.PATCH with soname NAME.so.MAJOR; NAME.so.MAJOR and
# NAME.so (what LD_PRELOAD and the tests name) are symlinks to it.
swm_version_part = $(shell sed -n 's/^.define SWIFTMALLOC_VERSION_$(1)  *\([0-9][0-9]*\).*/\1/p' $(SHIM)/exports/swiftmalloc.h)
VERSION_MAJOR := $(call swm_version_part,MAJOR)
VERSION := $(VERSION_MAJOR).$(call swm_version_part,MINOR).$(call swm_version_part,PATCH)
LIB_A  := $(BUILD)/libswiftmalloc.a
HEADER := $(BUILD)/include/swiftmalloc.h

.PHONY: all lib check-lib demo test check-symbols swift-test c-tests real-tests bench clean

SWIFT ?= swift
CLI := $(BUILD)/bin/swiftmalloc
CLI_SPAWN := $(BUILD)/libexec/swiftmalloc/spawn
CLI_SOURCES := $(sort $(wildcard Sources/SwiftMallocCLI/*.swift Sources/CLiveReader/*.c Sources/CLiveReader/include/*.h)) \
               $(SHIM)/include/swm_live.h Package.swift
CLI_STATIC ?=

all: lib $(CLI) $(CLI_SPAWN)
lib: $(LIB_SO) $(LIB_SECURE) $(LIB_A) $(HEADER)

# SwiftPM builds into .build; the copy in build/bin is what make install takes.
$(CLI): $(CLI_SOURCES)
	$(SWIFT) build -c release --product swiftmalloc $(if $(filter-out 0 no false,$(CLI_STATIC)),--static-swift-stdlib)
	@mkdir -p $(dir $@)
	cp .build/release/swiftmalloc $@

$(CLI_SPAWN): tools/spawn/swiftmalloc-spawn.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -o $@ $<

$(OBJ)/swiftmalloc.o: $(SWIFT_SOURCES) $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(SWIFTC) $(SWIFTFLAGS) -c $(SWIFT_SOURCES) -o $@
	@touch $@  # swiftc leaves an unchanged object's time alone: without this it would rerun on every make

$(OBJ)/%.o: $(SHIM)/%.c $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(OBJ)/secure_on.o: $(SHIM)/secure/secure_on.c
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(OBJ)/exports.o: $(SHIM)/exports/exports.c $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

# The archive's copy of the exports differs only in how it defines cfree.
$(OBJ)/exports_a.o: $(SHIM)/exports/exports.c $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -DSWM_ARCHIVE -c $< -o $@

# The C++ operators (cxx.c): unwind tables, so that a new_handler's or
# bad_alloc's exception passes through them; the archive's copy references
# std::__throw_bad_alloc strongly (see cxx.c).
$(OBJ)/cxx.o: $(SHIM)/exports/cxx.c $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -fexceptions -c $< -o $@

$(OBJ)/cxx_a.o: $(SHIM)/exports/cxx.c $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -fexceptions -DSWM_ARCHIVE -c $< -o $@

CORE_OBJS := $(OBJ)/swiftmalloc.o $(OBJ)/shim.o $(OBJ)/os.o $(OBJ)/live.o $(OBJ)/state.o $(OBJ)/pools.o $(OBJ)/exports.o $(OBJ)/cxx.o
LIB_OBJS := $(CORE_OBJS) $(OBJ)/secure_off.o
# -z nodelete: dlclose never unmaps the library. A thread that used it
# keeps a pthread key destructor (and fork handlers) pointing into it, run
# when the thread exits or the process forks, possibly after the dlclose.
LDFLAGS_LIB = -shared -Wl,--version-script=$(SHIM)/exports/swiftmalloc.map \
	      -Wl,--gc-sections -Wl,-z,now -Wl,-z,relro -Wl,-z,nodelete -Wl,--as-needed -Wl,-soname,$(notdir $(@:.$(VERSION)=)).$(VERSION_MAJOR)

$(LIB_SO).$(VERSION): $(LIB_OBJS) $(SHIM)/exports/swiftmalloc.map
	$(CC) $(LDFLAGS_LIB) -o $@ $(LIB_OBJS)

# The same library with secure mode always on (Secure.swift).
$(LIB_SECURE).$(VERSION): $(CORE_OBJS) $(OBJ)/secure_on.o $(SHIM)/exports/swiftmalloc.map
	$(CC) $(LDFLAGS_LIB) -o $@ $(CORE_OBJS) $(OBJ)/secure_on.o

$(LIB_SO) $(LIB_SECURE): %: %.$(VERSION)
	ln -sf $(notdir $<) $@.$(VERSION_MAJOR)
	ln -sf $(notdir $<) $@
	@sh tools/check-symbols.sh $@

ARCHIVE_OBJS := $(filter-out $(OBJ)/exports.o $(OBJ)/cxx.o,$(LIB_OBJS)) $(OBJ)/exports_a.o $(OBJ)/cxx_a.o
$(LIB_A): $(ARCHIVE_OBJS)
	rm -f $@
	ar rcs $@ $(ARCHIVE_OBJS)

# The same archive with the invariant checker (Invariants.swift) compiled in,
# for the fuzzer and tests: never shipped.
LIB_CHECK := $(BUILD)/libswiftmalloc-check.a
$(OBJ)/swiftmalloc-check.o: $(SWIFT_SOURCES) $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(SWIFTC) $(SWIFTFLAGS) -D SWM_INVARIANTS -c $(SWIFT_SOURCES) -o $@
	@touch $@

$(LIB_CHECK): $(OBJ)/swiftmalloc-check.o $(filter-out $(OBJ)/swiftmalloc.o,$(ARCHIVE_OBJS))
	rm -f $@
	ar rcs $@ $^
check-lib: $(LIB_CHECK)

$(HEADER): $(SHIM)/exports/swiftmalloc.h
	@mkdir -p $(dir $@)
	cp $< $@

check-symbols: $(LIB_SO)
	sh tools/check-symbols.sh $(LIB_SO)

clean:
	rm -rf $(BUILD) .build

-include Tests/tests.mk
-include tools/install.mk
-include bench/bench.mk
-include Tests/stress/stress.mk

demo: all
	sh examples/demo.sh
