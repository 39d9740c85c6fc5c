# swiftmalloc: builds the shipped library from Embedded Swift + a C shim.
#   make               build/libswiftmalloc.so, build/libswiftmalloc.a, build/include/swiftmalloc.h
#   make demo          build, then run real programs with the library preloaded
#   make test          every test: symbol checks, swift test, C tests (preloaded
#                      and static), real programs
#   make bench         the side-by-side benchmark (see bench/README.md)
#   make check-symbols what the .so links, imports and exports

SWIFTC  ?= swiftc
CC      ?= cc
BUILD   := build
OBJ     := $(BUILD)/obj
SHIM    := Sources/CShim
SWIFT_SOURCES := $(shell find Sources/SwiftMalloc -name '*.swift' | sort)
SHIM_SOURCES  := $(SHIM)/shim.c $(SHIM)/state.c $(SHIM)/pools.c $(SHIM)/secure_off.c $(SHIM)/secure/secure_on.c $(SHIM)/exports/exports.c
SHIM_HEADERS  := $(wildcard $(SHIM)/include/*.h) $(SHIM)/exports/swiftmalloc.h

SWIFTFLAGS := -enable-experimental-feature Embedded -wmo -O -parse-as-library \
              -module-name SwiftMalloc -enforce-exclusivity=unchecked \
              -I $(SHIM)/include -Xcc -fPIC -Xcc -O2 -Xllvm -enable-machine-outliner=never \
              -Xfrontend -function-sections
CFLAGS_LIB := -O2 -fPIC -ffunction-sections -fdata-sections -fno-plt -fvisibility=hidden -fno-stack-protector -Wall -Wextra \
              -I $(SHIM)/include -I $(SHIM)/exports -ftls-model=initial-exec

LIB_SO := $(BUILD)/libswiftmalloc.so
LIB_SECURE := $(BUILD)/libswiftmalloc-secure.so
LIB_A  := $(BUILD)/libswiftmalloc.a
HEADER := $(BUILD)/include/swiftmalloc.h

.PHONY: all demo test check-symbols swift-test c-tests real-tests bench clean

all: $(LIB_SO) $(LIB_SECURE) $(LIB_A) $(HEADER)

$(OBJ)/swiftmalloc.o: $(SWIFT_SOURCES) $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(SWIFTC) $(SWIFTFLAGS) -c $(SWIFT_SOURCES) -o $@

$(OBJ)/%.o: $(SHIM)/%.c $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(OBJ)/secure_on.o: $(SHIM)/secure/secure_on.c
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(OBJ)/exports.o: $(SHIM)/exports/exports.c $(SHIM_HEADERS)
	@mkdir -p $(OBJ)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

CORE_OBJS := $(OBJ)/swiftmalloc.o $(OBJ)/shim.o $(OBJ)/state.o $(OBJ)/pools.o $(OBJ)/exports.o
LIB_OBJS := $(CORE_OBJS) $(OBJ)/secure_off.o
LDFLAGS_LIB = -shared -Wl,--version-script=$(SHIM)/exports/swiftmalloc.map \
	      -Wl,--gc-sections -Wl,-z,now -Wl,-z,relro -Wl,--as-needed -Wl,-soname,$(notdir $@)

$(LIB_SO): $(LIB_OBJS) $(SHIM)/exports/swiftmalloc.map
	$(CC) $(LDFLAGS_LIB) -o $@ $(LIB_OBJS)
	@sh tools/check-symbols.sh $@

# The same library with secure mode always on (Secure.swift).
$(LIB_SECURE): $(CORE_OBJS) $(OBJ)/secure_on.o $(SHIM)/exports/swiftmalloc.map
	$(CC) $(LDFLAGS_LIB) -o $@ $(CORE_OBJS) $(OBJ)/secure_on.o
	@sh tools/check-symbols.sh $@

$(LIB_A): $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $(LIB_OBJS)

$(HEADER): $(SHIM)/exports/swiftmalloc.h
	@mkdir -p $(dir $@)
	cp $< $@

check-symbols: $(LIB_SO)
	sh tools/check-symbols.sh $(LIB_SO)

clean:
	rm -rf $(BUILD) .build

-include Tests/tests.mk
-include bench/bench.mk
-include Tests/stress/stress.mk

demo: all
	sh examples/demo.sh
