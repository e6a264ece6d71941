# kds: Kinesis Data Streams as Unix tools.
#
# Adding a tool: cmd/kds-VERB.c, its name in TOOLS below, man/kds-VERB.1,
# its line in the map of man/kds.7, completions/kds.bash, _kds and kds.fish,
# and tests/NN-VERB-*.bats.

PREFIX	?= /usr/local
DESTDIR	?=
BINDIR	?= $(PREFIX)/bin
MANDIR	?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# zsh looks in site-functions under /usr/local, and Debian's zsh in
# vendor-completions under /usr; fish in $XDG_DATA_DIRS/fish (only
# /usr/share/fish when that is unset).
ZSHCOMPDIR  ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/share/zsh/vendor-completions,$(PREFIX)/share/zsh/site-functions)
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

CC	?= cc
CFLAGS	?= -O2 -g
BUILD	?= build
KDS_CFLAGS = -std=gnu11 -pthread -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
	-Wstrict-prototypes -Wmissing-prototypes -Ilibstream
LDLIBS	= -pthread -lxxhash -lnettle -ljansson -larchive -lzstd

TOOLS	= kds-create kds-put kds-get kds-describe kds-expire kds-reshard
LIBSRC	= $(wildcard libstream/*.c)
LIBOBJ	= $(LIBSRC:libstream/%.c=$(BUILD)/lib/%.o)
UNITSRC	= $(wildcard tests/unit/t_*.c)
UNITBIN	= $(UNITSRC:tests/unit/%.c=$(BUILD)/unit/%)
BINS	= $(TOOLS:%=$(BUILD)/%)
MAN1	= $(TOOLS:%=man/%.1)
MAN5	= man/kds-stream.5
MAN7	= man/kds.7

all: $(BINS)

$(BUILD)/lib/%.o: libstream/%.c libstream/kds.h libstream/internal.h libstream/reader.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(KDS_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libstream.a: $(LIBOBJ)
	rm -f $@
	$(AR) rcs $@ $(LIBOBJ)

$(BUILD)/kds-%: cmd/kds-%.c $(BUILD)/libstream.a libstream/kds.h
	$(CC) $(CPPFLAGS) $(KDS_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libstream.a $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c tests/unit/tap.h $(BUILD)/libstream.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(KDS_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libstream.a $(LDLIBS)

# The whole suite, one TAP stream, one summary (prove's).
# Test files run TEST_JOBS at a time (each file's tests in order): they
# wait on sleeps, fsyncs and child processes as much as on the CPU.
# Crash-point and kill loops visit every TEST_STEP-th point, from a random
# phase that is printed: a run stays within CI's ten minutes, successive
# runs cover every point, and TEST_PHASE=N repeats a run.  make check-full
# visits every point (TEST_STEP=1).
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
TEST_STEP ?= 4
ifeq ($(origin TEST_PHASE),undefined)
TEST_PHASE := $(shell od -An -N2 -tu2 /dev/urandom | tr -d ' ')
endif
# The slowest files first: prove starts files in the order given, and a
# long one started last runs alone at the end while the other job idles.
TEST_SLOW = tests/85-hostile.bats tests/30-get.bats tests/75-verify.bats \
	tests/50-expire.bats
TEST_BATS ?= $(filter $(wildcard tests/*.bats),$(TEST_SLOW)) \
	$(filter-out $(TEST_SLOW),$(sort $(wildcard tests/*.bats)))
check: all $(UNITBIN)
	@command -v mandoc >/dev/null && mandoc -Tlint -W warning $(MAN1) $(MAN5) $(MAN7)
	@echo "crash points: every $(TEST_STEP), phase $(TEST_PHASE) (make check TEST_STEP=$(TEST_STEP) TEST_PHASE=$(TEST_PHASE) repeats it)"
	KDS_TEST_STEP=$(TEST_STEP) KDS_TEST_PHASE=$(TEST_PHASE) \
	KDS_BUILD=$(abspath $(BUILD)) prove -j$(TEST_JOBS) --timer --failures --comments \
		--exec tests/run-tap \
		$(UNITBIN) $(TEST_BATS)

check-full:
	$(MAKE) TEST_STEP=1 check

# The same suite with AddressSanitizer and UndefinedBehaviorSanitizer.
# Each run of a tool costs several times as much there, and the point of
# this pass is memory errors, which a sample of the crash points finds;
# LeakSanitizer's exit scan, 40 ms a run, checks every third test (and
# every unit test), from the same phase.  90-install and 92-completion
# test make install and the shells' completion scripts, which ASan has
# nothing to add to: about 45 s of this pass.
ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
check-asan:
	ASAN_OPTIONS=exitcode=86:detect_leaks=1 UBSAN_OPTIONS=exitcode=87 \
		KDS_TEST_LEAK_STEP=3 $(MAKE) BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" \
		LDFLAGS="$(ASAN_FLAGS)" TEST_STEP=16 \
		TEST_BATS="$(filter-out tests/90-install.bats tests/92-completion.bats,$(TEST_BATS))" check

demo: all
	KDS_BUILD=$(BUILD) examples/clickstream-demo.sh

bench: all
	CC="$(CC)" KDS_BUILD=$(abspath $(BUILD)) tests/bench.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	install -m 644 completions/kds.bash $(DESTDIR)$(BASHCOMPDIR)/kds
	for t in $(TOOLS); do ln -sf kds $(DESTDIR)$(BASHCOMPDIR)/$$t; done
	install -m 644 completions/_kds $(DESTDIR)$(ZSHCOMPDIR)/_kds
	install -m 644 completions/kds.fish $(DESTDIR)$(FISHCOMPDIR)/kds.fish
	# fish loads a completion file named after the command it completes
	for t in $(TOOLS); do ln -sf kds.fish $(DESTDIR)$(FISHCOMPDIR)/$$t.fish; done

uninstall:
	for t in $(TOOLS); do rm -f $(DESTDIR)$(BINDIR)/$$t \
		$(DESTDIR)$(MANDIR)/man1/$$t.1 $(DESTDIR)$(BASHCOMPDIR)/$$t \
		$(DESTDIR)$(FISHCOMPDIR)/$$t.fish; done
	rm -f $(DESTDIR)$(MANDIR)/man5/kds-stream.5 $(DESTDIR)$(MANDIR)/man7/kds.7 \
		$(DESTDIR)$(BASHCOMPDIR)/kds $(DESTDIR)$(ZSHCOMPDIR)/_kds \
		$(DESTDIR)$(FISHCOMPDIR)/kds.fish

# Every Debian package needed to build, test and benchmark.
DEPS = build-essential pkg-config libxxhash-dev nettle-dev libjansson-dev \
	libarchive-dev libzstd-dev libarchive-tools zstd bats mandoc perl python3 \
	strace clang libclang-rt-14-dev
# The shells whose completions tests/92-completion and 90-install try.
DEPS += bash-completion zsh fish
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEPS)

clean:
	rm -rf $(BUILD) build-asan demo

include tests/fuzz/fuzz.mk

.PHONY: all check check-full check-asan demo bench install uninstall deps clean
