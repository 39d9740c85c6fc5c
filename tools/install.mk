# tools/install.mk: `make install` and `make uninstall` (included by the Makefile).
#
#   make install PREFIX=/usr/local DESTDIR=      (PREFIX defaults to /usr/local)
#   make uninstall PREFIX=/usr/local DESTDIR=    removes exactly what install put there
#
# Installs, under $(DESTDIR)$(PREFIX):
#   lib/libswiftmalloc.so.$(VERSION)          soname libswiftmalloc.so.$(VERSION_MAJOR),
#   lib/libswiftmalloc.so.$(VERSION_MAJOR) -> it, lib/libswiftmalloc.so -> .so.$(VERSION_MAJOR)
#   lib/libswiftmalloc-secure.so.*            the same for the secure-mode library
#   lib/libswiftmalloc.a
#   include/swiftmalloc.h
#   lib/pkgconfig/swiftmalloc.pc
#   share/man/man3/swiftmalloc.3
#   bin/swiftmalloc                           the command (run, compare, top)
#   libexec/swiftmalloc/spawn                 its measuring helper
# LIBDIR, INCLUDEDIR, MANDIR, PKGCONFIGDIR, BINDIR and LIBEXECDIR override the
# places one by one. The command finds the library at ../lib from its own
# directory (or is given --library).
# install depends on `all` only: after `make`, it rebuilds nothing and needs
# no Swift toolchain (sudo make install works without swiftc on root's PATH).

PREFIX       ?= /usr/local
DESTDIR      ?=
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
MANDIR       ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BINDIR       ?= $(PREFIX)/bin
LIBEXECDIR   ?= $(PREFIX)/libexec
INSTALL      ?= install

SWM_SHARED_LIBS := libswiftmalloc libswiftmalloc-secure
SWM_INSTALLED := \
	$(foreach l,$(SWM_SHARED_LIBS),$(LIBDIR)/$(l).so.$(VERSION) $(LIBDIR)/$(l).so.$(VERSION_MAJOR) $(LIBDIR)/$(l).so) \
	$(LIBDIR)/libswiftmalloc.a $(INCLUDEDIR)/swiftmalloc.h $(PKGCONFIGDIR)/swiftmalloc.pc $(MANDIR)/man3/swiftmalloc.3 \
	$(BINDIR)/swiftmalloc $(LIBEXECDIR)/swiftmalloc/spawn

# pkg-config wants ${prefix}-relative paths where it can have them.
swm_pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

.PHONY: install uninstall

install: all
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man3
	for l in $(SWM_SHARED_LIBS); do \
	  $(INSTALL) -m 755 $(BUILD)/$$l.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$l.so.$(VERSION) && \
	  ln -sf $$l.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$l.so.$(VERSION_MAJOR) && \
	  ln -sf $$l.so.$(VERSION_MAJOR) $(DESTDIR)$(LIBDIR)/$$l.so || exit 1; \
	done
	$(INSTALL) -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libswiftmalloc.a
	$(INSTALL) -m 644 $(HEADER) $(DESTDIR)$(INCLUDEDIR)/swiftmalloc.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call swm_pc_path,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call swm_pc_path,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|g' \
	    tools/swiftmalloc.pc.in > $(BUILD)/swiftmalloc.pc
	$(INSTALL) -m 644 $(BUILD)/swiftmalloc.pc $(DESTDIR)$(PKGCONFIGDIR)/swiftmalloc.pc
	$(INSTALL) -m 644 docs/swiftmalloc.3 $(DESTDIR)$(MANDIR)/man3/swiftmalloc.3
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/swiftmalloc
	$(INSTALL) -m 755 $(CLI) $(DESTDIR)$(BINDIR)/swiftmalloc
	$(INSTALL) -m 755 $(CLI_SPAWN) $(DESTDIR)$(LIBEXECDIR)/swiftmalloc/spawn
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null 2>&1; then ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(SWM_INSTALLED))
	-rmdir $(DESTDIR)$(LIBEXECDIR)/swiftmalloc 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null 2>&1; then ldconfig; fi
