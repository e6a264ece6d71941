# helper.bash: what every tests/NN-*.bats file loads.
#
# The tools under test come from $KDS_BUILD (default: ../build beside this
# directory), put first on PATH so that an installed kds never answers for
# the tree under test.  Each test runs in its own $BATS_TEST_TMPDIR.

bats_require_minimum_version 1.5.0
shopt -s extglob

KDS_BUILD=${KDS_BUILD:-$BATS_TEST_DIRNAME/../build}
PATH=$KDS_BUILD:$PATH
export PATH
TOOLS=$BATS_TEST_DIRNAME/tools
DECODE=$TOOLS/kds-decode.py

# The spec's kds-get followed the stream unless given -e (as kcat does);
# the tools stop at the end and follow with -F.  Tests that mean "read
# what is there" say "kds-get $E", which stays empty until a -e comes.
E=

# python3 through pyenv's shim costs 100 ms a call: find the interpreter
# once per run and call it directly.
if [ -s "$BATS_RUN_TMPDIR/kds-python" ]; then
	KDS_PYTHON=$(cat "$BATS_RUN_TMPDIR/kds-python")
else
	KDS_PYTHON=$(command python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
	[ -x "$KDS_PYTHON" ] || KDS_PYTHON=$(command -v python3)
	echo "$KDS_PYTHON" >"$BATS_RUN_TMPDIR/kds-python"
fi
# -S: the tests use the standard library only, and a site-packages .pth
# (certifi's, say) can cost more than the rest of the start-up.
python3() {
	"$KDS_PYTHON" -S "$@"
}

# strace: LeakSanitizer cannot work under ptrace and then fails the run
# (exit 86 in make check-asan), so a traced tool checks everything but leaks.
strace() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 command strace "$@"
}

# STEP and PHASE: crash-point loops (strace's when=N) visit every STEP-th
# call from call FIRST = 1 + PHASE, loops over every offset (stepped)
# every STEP-th offset, and loops of random kills make RUNS(N) = N / STEP
# runs (at least 10).  STEP is 1 with bats alone and in make check-full,
# which is exhaustive; make check and make check-asan set KDS_TEST_STEP
# (each run costs several times as much under ASan) and a random
# KDS_TEST_PHASE, which they print, so that successive runs cover every
# point and a failure can be repeated with the same two numbers.
STEP=${KDS_TEST_STEP:-1}
PHASE=$((${KDS_TEST_PHASE:-0} % STEP))
FIRST=$((1 + PHASE))

# runs N: N / STEP, and at least 10.
runs() {
	local n=$(($1 / STEP))
	echo $((n < 10 ? 10 : n))
}

# no_leak_check: LeakSanitizer off for the rest of this test (make
# check-asan).  For loops that run the same commands hundreds of times:
# each exit's leak check costs 40 ms, and the other tests check the same
# code paths for leaks once.
no_leak_check() {
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
}

# make check-asan sets KDS_TEST_LEAK_STEP: leaks are checked in every
# such test of a file, from the phase, and in every unit test.  The
# exit scan costs 40 ms a tool run, most of the ASan pass, and most
# tests run the same paths as others; successive phases cover them all.
if [ -n "${KDS_TEST_LEAK_STEP-}" ] && [ -n "${BATS_TEST_NUMBER-}" ] &&
    (((BATS_TEST_NUMBER + ${KDS_TEST_PHASE:-0}) % KDS_TEST_LEAK_STEP != 0)); then
	no_leak_check
fi

# stepped WORDS...: every STEP-th of WORDS, from the (1 + PHASE)th.
stepped() {
	local i=0 w

	for w; do
		((i++ % STEP == PHASE)) && echo "$w"
	done
	return 0
}

# Tests set KDS_NOW themselves when they care about arrival times.
unset KDS_NOW CREATE_NOW
# A bare stream name means $KDS_ROOT/name when KDS_ROOT is set: the tests
# name streams in their own directory.
unset KDS_ROOT

# T: a fixed time for tests of arrival times, 2025-11-28T10:00:00Z.
T=1764324000

# fixed_clock: every tool of this test sees the clock at T + 3000 s, and
# mkstream creates streams at T, so that records put at T + x (put_at) are
# never older than their segment, and reads at T + 3000 find them all
# inside the default retention.
fixed_clock() {
	export CREATE_NOW=$T
	export KDS_NOW=$((T + 3000))
}

# 2^128 - 1, the last hash key.
HMAX=340282366920938463463374607431768211455

# Tests run in $BATS_TEST_TMPDIR/w: bats keeps its own files (the stderr
# of run --separate-stderr) in $BATS_TEST_TMPDIR, and a test that checks
# "nothing was created" must see only what the tools made.
kds_setup() {
	mkdir -p "$BATS_TEST_TMPDIR/w" && cd "$BATS_TEST_TMPDIR/w" || return 1
	umask 022
}

setup() {
	kds_setup
}

# mkstream STREAM [kds-create options...]: create or fail the test.
mkstream() {
	local s=$1
	shift
	KDS_NOW=${CREATE_NOW:-${KDS_NOW-}} kds-create "$@" "$s" || {
		echo "mkstream: kds-create $* $s failed" >&2
		return 1
	}
}

# shard_dir STREAM N: the directory of shard number N.
shard_dir() {
	printf '%s/shardId-%012d\n' "$1" "$2"
}

# segs STREAM N: the segment files of shard N, oldest first, one a line.
segs() {
	local d
	d=$(shard_dir "$1" "$2")
	find "$d" -maxdepth 1 -name '*.seg' -printf '%f\n' |
	    awk '{ print length($0) " " $0 }' | sort -n -k1,1 -k2,2 |
	    while read -r _ f; do printf '%s/%s\n' "$d" "$f"; done
}

# last_seg STREAM N: the active segment of shard N.
last_seg() {
	segs "$1" "$2" | tail -n 1
}

# seq_of SHARD COUNTER: the sequence number kds gives that record.
seq_of() {
	printf '%d%020d\n' "$(($1 + 1))" "$2"
}

# filesize FILE
filesize() {
	stat -c %s "$1"
}

# lines N [PREFIX]: N lines PREFIX1 .. PREFIXN, fast.
lines() {
	seq -f "${2-}%.0f" 1 "$1"
}

# put_at TIME [kds-put options...] STREAM: kds-put with the clock at TIME.
put_at() {
	local t=$1
	shift
	KDS_NOW=$t kds-put "$@"
}

# have_xxhash: the independent decoder can verify checksums.
have_xxhash() {
	python3 -c 'import ctypes; ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed' \
	    2>/dev/null
}

# flip FILE OFFSET: invert every bit of one byte, in place.
flip() {
	python3 - "$1" "$2" <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xff]))
EOF
}

# poke FILE OFFSET FMT VALUE: overwrite bytes with struct.pack(FMT, VALUE).
poke() {
	python3 - "$@" <<'EOF'
import struct, sys
path, off, fmt, val = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open(path, "r+b") as f:
    f.seek(off)
    f.write(struct.pack(fmt, val))
EOF
}

# frames SEGMENT: "offset length counter" of each whole frame, from the
# independent decoder (layout only, no checksum needed).
frames() {
	python3 "$DECODE" --frames "$1"
}

# first_line_is MSG: the first line of $stderr is exactly MSG and anything
# after it is the usage text.
first_line_is() {
	if [[ ${stderr_lines[0]-} != "$1" ]]; then
		printf 'expected stderr line: %s\nactual stderr:\n%s\n' "$1" "$stderr" >&2
		return 1
	fi
	local i
	for ((i = 1; i < ${#stderr_lines[@]}; i++)); do
		case ${stderr_lines[i]} in
		usage:* | '       '* | '    '* | $'\t'*) ;;
		*)
			printf 'unexpected stderr line %d: %s\n' "$i" "${stderr_lines[i]}" >&2
			return 1
			;;
		esac
	done
}

# stderr_is MSG: $stderr is exactly the one line MSG.
stderr_is() {
	if [[ $stderr != "$1" ]]; then
		printf 'expected stderr: %s\nactual stderr:   %s\n' "$1" "$stderr" >&2
		return 1
	fi
}

# same FILE1 FILE2: equal files, or the first lines of their diff.
same() {
	cmp -s "$1" "$2" && return 0
	diff "$1" "$2" | head -n 20 >&2
	return 1
}

# output_is TEXT: $output (stdout) is exactly TEXT.
output_is() {
	if [[ $output != "$1" ]]; then
		printf 'expected stdout:\n%s\nactual stdout:\n%s\n' "$1" "$output" >&2
		return 1
	fi
}

# is_usage: $stderr ends with the usage text of a tool.
has_usage() {
	local tool=$1
	if ! grep -q "^usage: $tool " <<<"$stderr"; then
		printf 'no "usage: %s" in stderr:\n%s\n' "$tool" "$stderr" >&2
		return 1
	fi
}

# decoded_count STREAM: how many records the independent decoder finds in
# STREAM, with every check of "kds-decode.py STREAM", checksums and all.
# Its own functions, called from here without the JSON line it prints
# for each record: that is over half its time on 200,000 records, and
# only the count is wanted.
decoded_count() {
	python3 - "$DECODE" "$1" <<'EOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("kds_decode", sys.argv[1])
dec = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dec)


class NoJSON:
    @staticmethod
    def dumps(record, **kw):
        return ""


class Count:
    n = 0

    def write(self, line):
        self.n += 1


dec.json = NoJSON
out = Count()
try:
    dec.decode_stream(sys.argv[2], out)
except dec.Bad as e:
    sys.exit("kds-decode: %s" % e)
print(out.n)
EOF
}

# calls_made TRACE: the most calls of one kind one process made, in the
# output of strace -f -o TRACE.  strace counts each call and process apart
# (when=N is the Nth mkdirat or the Nth pwrite64), so when=N kills a run
# for every N up to that and for none past it.
calls_made() {
	awk '{
		l = $0
		if (l ~ /^[0-9]+ /) { p = $1; sub(/^[0-9]+ +/, "", l) } else p = 0
		if (l !~ /^[a-z0-9_]+\(/) next		# resumed, signals, exits
		sub(/\(.*/, "", l)
		if (++c[p " " l] > m) m = c[p " " l]
	} END { print m + 0 }' "$1"
}

# capture CMD...: run the program CMD as bats' run --separate-stderr
# does, setting status, output, stderr and stderr_lines the same way, but
# with one file for stderr (run makes a new one for each call with
# mktemp, a process that costs more than a tool refusing its input) and no
# subshell.
capture() {
	status=0
	"$@" >"$BATS_TEST_TMPDIR/capture.out" 2>"$BATS_TEST_TMPDIR/capture.err" || status=$?
	output=$(<"$BATS_TEST_TMPDIR/capture.out")
	read -d '' -r stderr <"$BATS_TEST_TMPDIR/capture.err" || true
	IFS=$'\n' read -d '' -r -a stderr_lines <<<"$stderr" || true
}
