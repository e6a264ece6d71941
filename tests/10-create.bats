#!/usr/bin/env bats
# 10-create: kds-create lays out a stream as kds-stream(5) says, gives the
# hash key ranges AWS CreateStream gives, and refuses bad input without
# leaving anything behind.

load helper

# aws_shard_lines N: the shard lines of meta for a new N-shard stream,
# computed independently with python3 integers: h = 2^128 // n, shard i is
# [i*h, (i+1)*h - 1], the last one ends at 2^128 - 1.
aws_shard_lines() {
	python3 - "$1" <<'EOF'
import sys
n = int(sys.argv[1])
h = 2**128 // n
for i in range(n):
    start = i * h
    end = 2**128 - 1 if i == n - 1 else (i + 1) * h - 1
    print("shard shardId-%012d open - - %d %d %d%020d -" % (i, start, end, i + 1, 1))
EOF
}

# meta_checksum FILE: XXH3-64 (seed 0) of every byte before the checksum line.
meta_checksum() {
	python3 - "$1" <<'EOF'
import ctypes, sys
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
raw = open(sys.argv[1], "rb").read()
body = raw[: raw.rindex(b"checksum ")]
print("%016x" % f(body, len(body), 0))
EOF
}

check_ranges() {
	local n=$1
	mkstream s$n -n "$n"
	diff <(grep '^shard ' s$n/meta) <(aws_shard_lines "$n")
	[ "$(grep -c '^shard ' s$n/meta)" -eq "$n" ]
	grep -qx "next-shard $n" s$n/meta
	# each shard's directory (named in a file: no subshell for each)
	for ((i = 0; i < n; i++)); do shard_dir s$n $i; done >dirs
	while read -r d; do [ -d "$d" ]; done <dirs
	[ "$(find s$n -maxdepth 1 -name 'shardId-*' | wc -l)" -eq "$n" ]
}

@test "hash key ranges of 1 shard: all of [0, 2^128-1]" {
	check_ranges 1
	grep -qx "shard shardId-000000000000 open - - 0 $HMAX 100000000000000000001 -" s1/meta
}

@test "hash key ranges of 2 shards match AWS" {
	check_ranges 2
}

@test "hash key ranges of 3 shards match AWS (and KINESIS-FACTS.md)" {
	check_ranges 3
	grep -qx 'shard shardId-000000000000 open - - 0 113427455640312821154458202477256070484 100000000000000000001 -' s3/meta
	grep -qx 'shard shardId-000000000001 open - - 113427455640312821154458202477256070485 226854911280625642308916404954512140969 200000000000000000001 -' s3/meta
	grep -qx "shard shardId-000000000002 open - - 226854911280625642308916404954512140970 $HMAX 300000000000000000001 -" s3/meta
}

@test "hash key ranges of 7 shards match AWS" {
	check_ranges 7
}

@test "hash key ranges of 16 shards match AWS" {
	check_ranges 16
}

@test "meta of a default stream, byte for byte" {
	KDS_NOW=1764324000 run -0 --separate-stderr kds-create s
	[ -z "$output" ]
	[ -z "$stderr" ]
	head -n -1 s/meta >body
	diff body - <<EOF
kds-stream 1
created 1764324000000
retention 86400
segment-bytes 67108864
segment-age 3600
next-shard 1
shard shardId-000000000000 open - - 0 $HMAX 100000000000000000001 -
EOF
	tail -n 1 s/meta | grep -Eqx 'checksum [0-9a-f]{16}'
	[ -f s/lock ]
	[ ! -s s/lock ]
	[ -d s/shardId-000000000000 ]
	[ ! -e s/meta.tmp ]
}

@test "meta checksum is XXH3-64 of every byte before its line" {
	have_xxhash || skip "libxxhash.so.0 cannot be loaded"
	mkstream s -n 5
	[ "$(tail -n 1 s/meta)" = "checksum $(meta_checksum s/meta)" ]
}

@test "KDS_NOW in ISO 8601 and with a fraction sets created" {
	KDS_NOW=2025-11-28T10:00:00.250Z kds-create a
	grep -qx 'created 1764324000250' a/meta
	KDS_NOW=1764324000.5 kds-create b
	grep -qx 'created 1764324000500' b/meta
}

@test "long options and units land in meta" {
	run -0 --separate-stderr kds-create --shards 3 --retention 7d \
	    --segment-bytes 4K --segment-age 90m s
	grep -qx 'retention 604800' s/meta
	grep -qx 'segment-bytes 4096' s/meta
	grep -qx 'segment-age 5400' s/meta
	grep -qx 'next-shard 3' s/meta
	kds-create -r 90s --segment-bytes 2M --segment-age 2h a
	grep -qx 'retention 90' a/meta
	grep -qx 'segment-bytes 2097152' a/meta
	grep -qx 'segment-age 7200' a/meta
	kds-create -r 8760h --segment-bytes 1G --segment-age 1s b
	grep -qx 'retention 31536000' b/meta
	grep -qx 'segment-bytes 1073741824' b/meta
	grep -qx 'segment-age 1' b/meta
	kds-create -r 1s --segment-bytes 4096 c
	grep -qx 'retention 1' c/meta
	grep -qx 'segment-bytes 4096' c/meta
}

@test "the retention limit itself is accepted: 365d, 8760h, 525600m" {
	kds-create -r 365d a
	grep -qx 'retention 31536000' a/meta
	kds-create -r 525600m b
	grep -qx 'retention 31536000' b/meta
}

# 10,000 shards mean 10,000 fsync'ed directories: on a disk that is many
# seconds, so this one runs on tmpfs when there is one.
@test "the shard limit itself is accepted: 10000 shards" {
	d=.
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then
		d=$(mktemp -d /dev/shm/kds-test.XXXXXX)
	fi
	run -0 --separate-stderr kds-create -n 10000 "$d/c"
	cp "$d/c/meta" meta
	n=$(find "$d/c" -maxdepth 1 -name 'shardId-*' | wc -l)
	[ "$d" = . ] || rm -rf "$d"
	grep -qx 'next-shard 10000' meta
	[ "$(grep -c '^shard ' meta)" -eq 10000 ]
	[ "$n" -eq 10000 ]
	grep -q "^shard shardId-000000009999 open - - [0-9]* $HMAX $(seq_of 9999 1) -\$" meta
}

@test "modes follow the umask: 022" {
	umask 022
	mkstream s -n 2
	[ "$(stat -c %a s)" = 755 ]
	[ "$(stat -c %a s/shardId-000000000001)" = 755 ]
	[ "$(stat -c %a s/meta)" = 644 ]
	[ "$(stat -c %a s/lock)" = 644 ]
	run -0 find s -type f ! -perm 644
	[ -z "$output" ]
}

@test "modes follow the umask: 077" {
	umask 077
	mkstream s -n 2
	[ "$(stat -c %a s)" = 700 ]
	[ "$(stat -c %a s/shardId-000000000000)" = 700 ]
	[ "$(stat -c %a s/meta)" = 600 ]
	run -0 find s ! -perm -u=r -o -perm /g=rwx,o=rwx
	[ -z "$output" ]
}

@test "KDS_ROOT: a bare name lives there, a name with a slash does not" {
	mkdir root
	KDS_ROOT=$PWD/root kds-create -n 2 s
	[ -f root/s/meta ]
	[ ! -e s ]
	echo a | KDS_ROOT=$PWD/root kds-put s
	run -0 --separate-stderr env KDS_ROOT="$PWD/root" kds-get $E s
	output_is a
	KDS_ROOT=$PWD/root kds-create ./t
	[ -f t/meta ]
	[ ! -e root/t ]
	run -1 --separate-stderr env KDS_ROOT="$PWD/root" kds-create s
	stderr_is "kds-create: s: File exists"
}

@test "an existing directory is refused, left as it was" {
	mkdir s
	touch s/mine
	run -1 --separate-stderr kds-create s
	stderr_is "kds-create: s: File exists"
	[ "$(ls -A s)" = mine ]
}

@test "an existing file is refused, left as it was" {
	echo keep >s
	run -1 --separate-stderr kds-create -n 2 s
	stderr_is "kds-create: s: File exists"
	[ "$(cat s)" = keep ]
}

@test "an existing stream is refused and its meta untouched" {
	mkstream s -n 2
	cp s/meta meta.before
	run -1 --separate-stderr kds-create -n 4 s
	stderr_is "kds-create: s: File exists"
	cmp s/meta meta.before
	[ ! -e s/shardId-000000000002 ]
}

@test "a missing parent is refused and nothing is created" {
	run -1 --separate-stderr kds-create nodir/s
	stderr_is "kds-create: nodir/s: nodir: No such file or directory"
	[ ! -e nodir ]
	[ -z "$(ls -A)" ]
}

@test "a parent that is a file is refused" {
	touch f
	run -1 --separate-stderr kds-create f/s
	stderr_is "kds-create: f/s: f: Not a directory"
}

@test "an unwritable parent is refused (as nobody), nothing created" {
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	runuser -u nobody -- test -x "$KDS_BUILD/kds-create" ||
	    skip "nobody cannot run $KDS_BUILD/kds-create"
	d=$(mktemp -d /tmp/kds-perm.XXXXXX)
	chmod 755 "$d"
	run -1 --separate-stderr runuser -u nobody -- "$KDS_BUILD/kds-create" "$d/s"
	ls=$(ls -A "$d")
	rm -rf "$d"
	stderr_is "kds-create: $d/s: $d: Permission denied"
	[ -z "$ls" ]
}

# nothing_here: the working directory is empty (as [ -z "$(ls -A)" ], but
# with no process: the globs match every name but . and .., and one that
# matches nothing stays as it is, which does not exist).
nothing_here() {
	local f
	for f in * .[!.]* ..?*; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			echo "left behind: $f" >&2
			return 1
		fi
	done
}

# bad_value WORDS OPTION VALUE HINT: exit 2, the exact first line
# "kds-create: bad WORDS 'VALUE': HINT", usage after it if any, no stream.
bad_value() {
	local words=$1 opt=$2 val=$3 hint=$4
	capture kds-create "$opt" "$val" s
	[ "$status" -eq 2 ] || { echo "kds-create $opt '$val': exit $status, not 2" >&2; return 1; }
	[ -z "$output" ]
	first_line_is "kds-create: bad $words '$val': $hint"
	[ ! -e s ] || { echo "kds-create $opt '$val' left s behind" >&2; return 1; }
	nothing_here
}

DURATION_HINT="a number and s, m, h or d, from 1s to 8760h"

@test "bad shard counts: exit 2, one line, nothing created" {
	for v in 0 10001 x -1 1.5 '' ' 3' 3x 99999999999999999999999 0x10; do
		bad_value "shard count" -n "$v" "1 to 10000"
		bad_value "shard count" --shards "$v" "1 to 10000"
	done
}

@test "bad retention: exit 2, one line, nothing created" {
	for v in 0s 0h 8761h 366d 525601m 31536001s 24 abc -1h 1.5h h 1w 1H '' ' 1h' 1h0 \
	    99999999999999999999h; do
		bad_value retention -r "$v" "$DURATION_HINT"
		bad_value retention --retention "$v" "$DURATION_HINT"
	done
}

@test "bad segment size: exit 2, one line, nothing created" {
	for v in 0 4095 3K 1025M 1073741825 2G 1T 64MB -4096 '' M 4096.0 ' 4096' \
	    99999999999999999999999; do
		bad_value "segment size" --segment-bytes "$v" "4096 to 1G bytes"
	done
}

@test "bad segment age: exit 2, one line, nothing created" {
	for v in 0s 0m 1 60 abc -1s 1.5h '' s 1y 99999999999999999999d; do
		bad_value "segment age" --segment-age "$v" "$DURATION_HINT"
	done
}

# inject_each CALLS ERRNO: fail a call of kds-create -n 4 s, each of the
# calls of those kinds a whole run makes in turn (each run of the suite
# every STEP-th of them, in the order they come: see some).  A failed run
# leaves nothing behind, or, when the failure came after the stream was
# renamed into place (the fsync of the parent), a whole stream: never a
# part of one.
inject_each() {
	local calls=$1 err=$2 p points sc n
	# the calls a whole run makes, each as KIND:N, its Nth of that kind
	# (strace counts each kind apart: in one set, when=N would only ever
	# fail the first kind to reach its Nth call)
	strace -f -o "$BATS_TEST_TMPDIR/trace" -e trace="$calls" kds-create -n 4 s
	[ -f s/meta ]
	[ -d s/shardId-000000000003 ]
	rm -rf s
	points=($(awk '$2 ~ /^[a-z0-9_]+\(/ { c = $2; sub(/\(.*/, "", c); print c ":" ++n[c] }' \
	    "$BATS_TEST_TMPDIR/trace"))
	[ "${#points[@]}" -gt 0 ] || { echo "no $calls at all?" >&2; return 1; }
	echo "# $calls: ${#points[@]} calls" >&3
	for p in $(some "${points[@]}"); do
		sc=${p%:*} n=${p#*:}
		run --separate-stderr strace -f -o /dev/null -e trace="$sc" \
		    -e inject="$sc":error="$err":when=$n kds-create -n 4 s
		[ "$status" -eq 1 ] || { echo "$sc $n: exit $status: $stderr" >&2; return 1; }
		[ "${#stderr_lines[@]}" -eq 1 ] && [[ $stderr == "kds-create: s: "* ]] || {
			echo "$sc $n: stderr: $stderr" >&2
			return 1
		}
		if [ -e s ]; then
			# only whole: meta in place, every shard, nothing temporary
			[ -f s/meta ] && [ -d s/shardId-000000000003 ] && [ ! -e s/meta.tmp ] || {
				echo "$sc $n failed: left a partial stream" >&2
				return 1
			}
			! have_xxhash || python3 "$DECODE" s >/dev/null
			[ "$(ls -A)" = s ] || { echo "$sc $n: left $(ls -A)" >&2; return 1; }
			rm -rf s
		fi
		nothing_here || { echo "($sc $n failed)" >&2; return 1; }
	done
}

# some WORDS...: stepped WORDS, or when there are too few of them for
# this phase to pick one, the one at PHASE % their number: each run of
# the suite fails one call at least.
some() {
	local picked
	picked=$(stepped "$@")
	if [ -n "$picked" ] || [ $# -eq 0 ]; then
		echo "$picked"
	else
		shift $((PHASE % $#))
		echo "$1"
	fi
}

@test "an I/O error in any mkdir never leaves part of a stream" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	inject_each mkdir,mkdirat ENOSPC
}

@test "an I/O error in any rename or fsync never leaves part of a stream" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	inject_each rename,renameat,renameat2 EIO
	inject_each fsync,fdatasync EIO
}

@test "an I/O error in any write never leaves part of a stream" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	inject_each write,pwrite64 ENOSPC
}

# No getrandom (a kernel without it, a seccomp filter): the random name
# of the directory the stream is built in cannot be drawn.  Exit 1, the
# call named, nothing made.
@test "getrandom failing: exit 1, the call named, nothing made" {
	command -v strace >/dev/null || skip "no strace"
	run -1 --separate-stderr strace -f -o /dev/null -e trace=getrandom \
	    -e inject=getrandom:error=ENOSYS kds-create -n 2 s
	stderr_is "kds-create: s: getrandom: Function not implemented"
	nothing_here
}

# The loops above check that a failure anywhere is one line about s; here
# the words of a few: the file and the call that failed, then the error.
@test "an I/O error in a write, fsync or rename names its file and call" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	seg=shardId-000000000000/$(seq_of 0 1).seg
	run -1 --separate-stderr strace -f -o /dev/null -e trace=write \
	    -e inject=write:error=EIO:when=1 kds-create -n 2 s
	stderr_is "kds-create: s: $seg.tmp: write: Input/output error"
	nothing_here
	run -1 --separate-stderr strace -f -o /dev/null -e trace=fsync \
	    -e inject=fsync:error=EIO:when=1 kds-create -n 2 s
	stderr_is "kds-create: s: shardId-000000000000: fsync: Input/output error"
	nothing_here
	run -1 --separate-stderr strace -f -o /dev/null -e trace=renameat \
	    -e inject=renameat:error=EIO:when=1 kds-create -n 2 s
	stderr_is "kds-create: s: meta.tmp: rename: Input/output error"
	nothing_here
	# the new segment's rename: EEXIST says only the name (kds-put's
	# roll); any other error must say that it was the rename that failed
	run -1 --separate-stderr strace -f -o /dev/null -e trace=renameat2 \
	    -e inject=renameat2:error=EIO:when=1 kds-create -n 2 s
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "kds-create: s: $seg"?(.tmp)": rename: Input/output error" ]] ||
	    { echo "stderr: $stderr" >&2; return 1; }
	nothing_here
}
