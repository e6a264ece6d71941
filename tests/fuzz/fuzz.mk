# tests/fuzz/fuzz.mk: libFuzzer targets (tests/README.md, Fuzzing).
# Included by the Makefile.
#
#	make fuzz			build, then fuzz each target FUZZ_SECONDS
#	make fuzz FUZZ_TARGETS=meta	one target
#	make fuzz-regress		run each target once over its corpus and
#					regress files: no fuzzing, a few seconds
#
# The library is compiled anew with the sanitizers into build-fuzz/, never
# taken from build/.  Fuzzing starts from a copy of the corpus in
# build-fuzz/run/, so the tree is not modified; crashes go to
# build-fuzz/artifacts/TARGET/.  With FUZZ_ENGINE=replay (any compiler,
# such as FUZZ_CC=gcc) the targets are linked to tests/fuzz/replay.c, which
# only runs the files it is given: enough for fuzz-regress.

FUZZ_CC		?= clang
FUZZ_ENGINE	?= libfuzzer
FUZZ_SECONDS	?= 60
FUZZ_TARGETS	?= segment frame meta jsonl parse archive
FUZZ_BUILD	 = build-fuzz
# Millions of files written and fsynced: on a tmpfs when there is one.
FUZZ_TMPDIR	?= $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm || \
	echo $${TMPDIR:-/tmp})
FUZZ_SAN	 = -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all
# The library's warnings, without -Werror: another compiler's new warning
# must not stop a fuzzing run.
FUZZ_CFLAGS	 = $(filter-out -Werror,$(KDS_CFLAGS)) $(FUZZ_SAN)
ifeq ($(FUZZ_ENGINE),libfuzzer)
FUZZ_LIBSAN	 = -fsanitize=fuzzer-no-link
FUZZ_MAIN	 = -fsanitize=fuzzer
else
FUZZ_LIBSAN	 =
FUZZ_MAIN	 = tests/fuzz/replay.c
endif

FUZZ_LIBOBJ	 = $(LIBSRC:libstream/%.c=$(FUZZ_BUILD)/lib/%.o)
FUZZ_BINS	 = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_LIBOBJ): $(FUZZ_BUILD)/lib/%.o: libstream/%.c libstream/kds.h \
		libstream/internal.h libstream/reader.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_LIBSAN) -c -o $@ $<

$(FUZZ_BINS): $(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h \
		tests/fuzz/replay.c $(FUZZ_LIBOBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_MAIN) $(FUZZ_LIBOBJ) $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# Each target in turn; the first crash stops the run and names its file.
fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		run=$(FUZZ_BUILD)/run/$$t; \
		rm -rf $$run; mkdir -p $$run/corpus $(FUZZ_BUILD)/artifacts/$$t; \
		for d in tests/fuzz/corpus/$$t tests/fuzz/regress/$$t; do \
			if [ -d $$d ]; then cp $$d/* $$run/corpus/ 2>/dev/null || :; fi; \
		done; \
		dict=; if [ -f tests/fuzz/$$t.dict ]; then \
			dict=-dict=tests/fuzz/$$t.dict; fi; \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
		TMPDIR=$(FUZZ_TMPDIR) $(FUZZ_BUILD)/fuzz_$$t $$dict \
			-max_total_time=$(FUZZ_SECONDS) -timeout=30 \
			-print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ \
			$$run/corpus 2>$$run/log || { tail -n 60 $$run/log; \
			echo "fuzz_$$t: crash, see $$run/log and" \
			    "$(FUZZ_BUILD)/artifacts/$$t/"; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
			$$run/log | sed "s/^/  /"; \
	done

# Every corpus and regress file once: a finding fixed stays fixed.
fuzz-regress: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		dirs=; for d in tests/fuzz/corpus/$$t tests/fuzz/regress/$$t; do \
			if [ -d $$d ]; then dirs="$$dirs $$d"; fi; \
		done; \
		echo "fuzz_$$t:$$dirs"; \
		TMPDIR=$(FUZZ_TMPDIR) $(FUZZ_BUILD)/fuzz_$$t -runs=0 $$dirs \
			>$(FUZZ_BUILD)/regress-$$t.log 2>&1 || \
			{ tail -n 60 $(FUZZ_BUILD)/regress-$$t.log; exit 1; }; \
	done

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz fuzz-build fuzz-regress fuzz-clean
