#!/usr/bin/env bats
# 85-hostile: input meant to hurt.  Stream paths, shard ids and consumer
# names with "..", "/", control characters or thousands of bytes;
# symbolic links planted in a stream in place of its files; bad partition
# and hash keys; numbers negative, huge or past 64 bits for every numeric
# option; jsonl that is not what it claims.  Each is refused with one line
# "TOOL: ..." on stderr (no control character in it), exit 2 for usage or
# 1 for failure, and nothing written: under the working directory (streams
# and symlink targets included) nothing made or removed, nothing changed in
# type, mode, owner, group or link target, no file or link changed in size,
# inode, link count, modification or change time, and no tail in its bytes
# (snap says why that catches every write).

load helper

setup() {
	kds_setup
	fixed_clock
}

# snap VAR: into VAR, a line for everything under the working directory,
# in directory order (which files that come and go do not change): path,
# type, mode, owner and group; for all but directories size, inode and
# link count, for links their target, and modification and change times
# in nanoseconds, but for tails their bytes instead of times.
#   Directories' sizes and times are left out: they change when a lock or
# temporary file comes and goes again, and what they hold has lines of its
# own.  Tails' times are left out: a writer or a reshard that fails may
# write a tail's own bytes back.  Other files' bytes are not read, since
# no write leaves a file's change time as it was (and nothing can set it)
# but one in the same tick of the coarse clock that stamps it (4 ms here,
# 10 ms at most) as the file's last change: when any file changed less
# than 20 ms before, snap waits 20 ms, so a write after it has a later
# change time.  The tar | md5sum this replaces cost two processes each
# time, more than the command under test; this costs find alone.  Its
# files are kept beside the working directory, where only what the test
# and the tools made may be.
snap() {
	local t at
	t=${EPOCHREALTIME/[.,]/}
	t=$((t - 20000))
	printf -v at '@%d.%06d' $((t / 1000000)) $((t % 1000000))
	list "$1" \( -type d -o -type f -name tail -o ! -newerct "$at" -o \
	    -fprint "$BATS_TEST_TMPDIR/snap.young" \)
	[ ! -s "$BATS_TEST_TMPDIR/snap.young" ] || sleep 0.02
}

# list VAR [FIND-EXPRESSION]: what snap compares, into VAR.
list() {
	local list_var=$1 list_tails list_f list_b list_q
	shift
	find . -printf '%p %y %m %U %G' \( -type d -printf '\n' -o \
	    -type f -name tail -printf ' %s %i %n\n' -fprint0 "$BATS_TEST_TMPDIR/snap.tails" -o \
	    -printf ' %s %i %n %l %T@ %C@\n' \) "$@" >"$BATS_TEST_TMPDIR/snap"
	IFS= read -r -d '' "$list_var" <"$BATS_TEST_TMPDIR/snap" || true
	# a tail's bytes, as the strings between its NULs (its size is above)
	mapfile -d '' -t list_tails <"$BATS_TEST_TMPDIR/snap.tails"
	for list_f in "${list_tails[@]}"; do
		mapfile -d '' -t list_b <"$list_f"
		printf -v list_q ' %q' "${list_b[@]}"
		printf -v "$list_var" '%s%s:%s\n' "${!list_var}" "$list_f" "$list_q"
	done
}

# unchanged BEFORE: what snap lists now is still BEFORE.
unchanged() {
	local now
	list now
	[ "$now" = "$1" ] || {
		echo "the working directory changed:" >&2
		diff <(echo "$1") <(echo "$now") >&2
		return 1
	}
}

# has_cntrl STRING: STRING holds a control character (as grep's
# [[:cntrl:]] in the C locale: bytes 1 to 31 and 127).
has_cntrl() {
	local LC_ALL=C
	[[ $1 == *[[:cntrl:]]* ]]
}

# In loops that change nothing, BEFORE holds the snap that each case
# must leave as it found, taken once.

# refused STATUS MESSAGE CMD...: CMD exits STATUS, says exactly MESSAGE
# (one line) on stderr, nothing on stdout (unless OUT_OK is set: a
# reader prints what it read before), and writes nothing.
refused() {
	local want=$1 msg=$2 before=${BEFORE-}
	shift 2
	[ -n "$before" ] || snap before
	capture "$@"
	[ "$status" -eq "$want" ] || {
		echo "$*: exit $status, not $want; stderr: $stderr" >&2
		return 1
	}
	stderr_is "$msg" || { echo "(from: $*)" >&2; return 1; }
	[ -z "$output" ] || [ -n "${OUT_OK-}" ] ||
	    { echo "$*: stdout: ${output:0:200}" >&2; return 1; }
	unchanged "$before"
}

# refused_usage STATUS FIRST-LINE CMD...: as refused, but getopt's line
# may be followed by the usage text.
refused_usage() {
	local want=$1 msg=$2 before
	shift 2
	snap before
	capture "$@"
	[ "$status" -eq "$want" ] || {
		echo "$*: exit $status, not $want; stderr: $stderr" >&2
		return 1
	}
	first_line_is "$msg"
	[ -z "$output" ]
	unchanged "$before"
}

# one_line TOOL STATUS CMD...: exit STATUS and one line "TOOL: ..." with
# no control character in it, whatever its words; nothing written.
one_line() {
	local tool=$1 want=$2 before=${BEFORE-}
	shift 2
	[ -n "$before" ] || snap before
	capture "$@"
	[ "$status" -eq "$want" ] || {
		echo "$(printf '%q ' "$@"): exit $status, not $want" >&2
		return 1
	}
	[ "${#stderr_lines[@]}" -eq 1 ] && [[ $stderr == "$tool: "* ]] &&
	    ! has_cntrl "$stderr" || {
		echo "$(printf '%q ' "$@"): stderr: $(printf '%q' "$stderr")" >&2
		return 1
	}
	unchanged "$before"
}

# long_to VAR N [CHAR]: VAR is N bytes of CHAR (default a).  No process:
# the arrays below are made again for each test.
long_to() {
	local long_s=${3:-a}
	while ((${#long_s} < $2)); do long_s+=$long_s; done
	printf -v "$1" '%s' "${long_s:0:$2}"
}

# long N [CHAR]: print N bytes of CHAR (default a).
long() {
	local long_v
	long_to long_v "$@"
	printf '%s' "$long_v"
}

long_to A300 300
long_to A5000 5000
long_to SLASH5000 5000 /
long_to NINE40 40 9
long_to NINE5000 5000 9

# The strings every name-like argument is tried with.
HOSTILE=(.. . / ../s s/.. ../../../../../../etc /etc/passwd 'a/b' "$A300"
    "$A5000" "$SLASH5000")
CONTROL=($'a\nb' $'a\rb' $'\e[31mred' $'tab\there' $'a\x7fb' $'\x01')

@test "stream paths: .., /, long and missing: one line, exit 1, nothing made" {
	mkstream s
	echo x >in
	long 300 >long300
	mkdir -p d && echo x >f
	snap BEFORE
	for p in .. . / d f f/s d/.. "$(long 5000)" "$(long 5000 /)" \
	    "nodir/$(long 300)" "$(long 300)"; do
		for cmd in "kds-put -k k" "kds-get $E" "kds-describe" "kds-expire" \
		    "kds-reshard" "kds-create"; do
			local args=($cmd "$p")
			[ "$cmd" != kds-reshard ] || args+=(scale 2)
			one_line "${cmd%% *}" 1 "${args[@]}" <in || return 1
		done
	done
	unset BEFORE
	# the messages themselves, for a few
	refused 1 "kds-get: ..: not a stream (no meta file)" kds-get $E ..
	refused 1 "kds-create: ..: File exists" kds-create ..
	refused 1 "kds-create: d/..: File exists" kds-create d/..
	refused 1 "kds-create: /: File exists" kds-create /
	refused 1 "kds-create: f/s: f: Not a directory" kds-create f/s
	refused 1 "kds-create: $(long 300): File name too long" kds-create "$(long 300)"
	# a message never runs on for thousands of bytes
	run -1 --separate-stderr kds-create "$(long 5000)"
	[ "${#stderr}" -lt 1100 ]
	[[ $stderr == *"...: File name too long" ]]
}

@test "a stream name as long as the file system allows is created" {
	# kds-create builds the stream under a temporary name beside it,
	# which must not be what is too long
	run -0 --separate-stderr kds-create "$(long 255)"
	[ -z "$stderr" ]
	run -0 --separate-stderr kds-put -p -k k "$(long 255)" <<<"x"
	run -0 kds-get $E "$(long 255)"
	[ "$output" = x ]
	refused 1 "kds-create: $(long 256): File name too long" kds-create "$(long 256)"
}

@test "kds-create: a stream path with a control character is refused" {
	refused 2 "kds-create: bad stream path 'a\\nb': control characters are not allowed" \
	    kds-create $'a\nb'
	refused 2 "kds-create: bad stream path '\\x1b[31mred': control characters are not allowed" \
	    kds-create $'\e[31mred'
	for p in "${CONTROL[@]}" $'d/\nx'; do
		one_line kds-create 2 kds-create "$p" || return 1
	done
}

@test "kds-reshard, kds-expire: stream paths with control characters, escaped" {
	for p in "${CONTROL[@]}"; do
		one_line kds-reshard 1 kds-reshard "$p" scale 2 || return 1
		one_line kds-expire 1 kds-expire "$p" || return 1
		one_line kds-expire 1 kds-expire -a "$p" s || return 1
	done
	refused 1 "kds-reshard: a\\nb: No such file or directory" kds-reshard $'a\nb' scale 2
	refused 1 "kds-expire: a\\nb: No such file or directory" kds-expire $'a\nb'
	refused 1 "kds-expire: \\x1b[31mred: No such file or directory" kds-expire -a $'\e[31mred' s
	# a stream whose name has one (made by hand) is still expired, and
	# what -v says of it is one line
	mkstream ok && mv ok $'a\nb'
	run -0 --separate-stderr kds-expire -v $'a\nb'
	[ "$output" = 'a\nb: nothing has expired' ]
}

@test "kds-get, kds-put, kds-describe: stream paths with control characters, escaped" {
	echo x >in
	for p in "${CONTROL[@]}"; do
		one_line kds-get 1 kds-get $E "$p" || return 1
		one_line kds-put 1 kds-put -k k "$p" <in || return 1
		one_line kds-describe 1 kds-describe "$p" || return 1
	done
}

@test "shard ids: .., /, control characters, thousands of digits: exit 2" {
	mkstream s -n 2
	snap BEFORE
	for id in "${HOSTILE[@]}" -1 ' 1' '1 ' +1 0x1 1e3 shardId-1 shardId-0000000000001 \
	    shardId-00000000000a 0000000000001 "$(long 5000 1)" '' shardId- \
	    shardid-000000000000 'shardId-000000000000/../x'; do
		one_line kds-get 2 kds-get $E -s "$id" s || return 1
		one_line kds-get 2 kds-get --archive -s "$id" nothing.tar.zst || return 1
		one_line kds-reshard 2 kds-reshard s split -- "$id" || return 1
		one_line kds-reshard 2 kds-reshard s merge 0 -- "$id" || return 1
	done
	unset BEFORE
	refused 2 "kds-get: bad shard id '../s'" kds-get $E -s ../s s
	refused 2 "kds-reshard: bad shard id '../s'" kds-reshard s split ../s
	refused 2 "kds-reshard: bad shard id 'shardId-000000000000/../x'" \
	    kds-reshard s merge shardId-000000000000/../x 1
	refused 2 "kds-reshard: bad shard id '0\\n'" kds-reshard s split $'0\n'
	refused 2 "kds-reshard: bad shard id '\\x1b[31mred'" kds-reshard s split $'\e[31mred'
	run -2 --separate-stderr kds-reshard s split "$(long 5000 1)"
	[ "${#stderr}" -lt 1100 ]
	[[ $stderr == "kds-reshard: bad shard id '111"*"...'" ]]
	# numbers past 12 digits never wrap onto a real shard
	refused 2 "kds-reshard: bad shard id '1000000000000'" kds-reshard s split 1000000000000
	refused 1 "kds-reshard: s: shardId-999999999999: no such shard" kds-reshard s split 999999999999
}

@test "kds-get -s with control characters: one escaped line" {
	mkstream s
	for id in "${CONTROL[@]}"; do
		one_line kds-get 2 kds-get $E -s "$id" s || return 1
	done
}

@test "consumer names: .., /, control characters, thousands of bytes: exit 2, nothing made" {
	mkstream s
	echo x | kds-put -k k s
	snap BEFORE
	for name in "${HOSTILE[@]}" '' .hidden "$(long 129)" 'a b' 'a:b' 'ü' '*'; do
		one_line kds-get 2 kds-get $E -c "$name" s || return 1
		one_line kds-get 2 kds-get -c "$name" --reset s || return 1
		one_line kds-get 2 kds-get -c "$name" --delete s || return 1
	done
	unset BEFORE
	refused 2 "kds-get: bad consumer name '../x': 1 to 128 of A-Z a-z 0-9 _ . -, not starting with '.'" \
	    kds-get $E -c ../x s
	[ ! -e s/consumers ]
	# the longest name is fine
	run -0 --separate-stderr kds-get $E -c "$(long 128)" s
	[ "$output" = x ]
	[ -d "s/consumers/$(long 128)" ]
}

@test "consumer names with control characters: one escaped line" {
	mkstream s
	for name in "${CONTROL[@]}"; do
		one_line kds-get 2 kds-get $E -c "$name" s || return 1
	done
}

# Every other option that takes words: a value with control characters is
# refused on one escaped line, as shard ids and consumer names are.
@test "option values with control characters: one escaped line, exit 2" {
	mkstream s
	echo x | kds-put -k k s
	snap BEFORE
	for v in "${CONTROL[@]}"; do
		one_line kds-get 2 kds-get $E -i "$v" s || return 1
		one_line kds-get 2 kds-get $E -o "$v" s || return 1
		one_line kds-get 2 kds-get $E --sequence "$v" s || return 1
		one_line kds-get 2 kds-get $E --timestamp "$v" s || return 1
		one_line kds-get 2 kds-get $E -n "$v" s || return 1
		one_line kds-put 2 kds-put -i "$v" s </dev/null || return 1
		one_line kds-put 2 kds-put -o "$v" s </dev/null || return 1
		one_line kds-put 2 kds-put --sync "$v" s </dev/null || return 1
		one_line kds-create 2 kds-create --group "$v" t || return 1
	done
	unset BEFORE
	refused 2 "kds-get: bad iterator type 'a\\nb'" kds-get $E -i $'a\nb' s
	refused 2 "kds-get: bad iterator type '\\x1b[31mred'" kds-get $E -i $'\e[31mred' s
	refused 2 "kds-get: bad output format 'a\\nb': lines, raw or jsonl" kds-get $E -o $'a\nb' s
}

# pristine: p, a stream of one shard with 4 KiB segments, 300 records at
# T + 1000 in three segments, and a consumer cc that has delivered 100.
pristine() {
	mkstream p --segment-bytes 4096
	seq -f 'rec-%03.0f' 1 300 | put_at $((T + 1000)) -k k p
	kds-get -c cc -n 100 p >/dev/null
	[ "$(segs p 0 | wc -l)" -eq 3 ]
}

# plant REL: in a fresh copy s of p, put a symbolic link at s/REL to what
# was there, moved out of the stream (or to a file, when nothing was): a
# tool that followed it would find what it looks for, and write there.
plant() {
	local rel=$1
	rm -rf s victim && cp -a p s
	if [ -e "s/$rel" ]; then
		mv "s/$rel" victim
	else
		echo "not a stream file" >victim
	fi
	ln -s "$PWD/victim" "s/$rel"
}

# no_follow REL STATUS WHAT CMD...: with REL planted, CMD exits 1 saying
# "TOOL: s: WHAT: Too many levels of symbolic links" and writes nothing,
# through the link or beside it.
no_follow() {
	local rel=$1 what=$2
	shift 2
	plant "$rel"
	refused 1 "$1: s: $what: Too many levels of symbolic links" "$@" ||
	    { echo "(with s/$rel a symbolic link)" >&2; return 1; }
}

@test "a symbolic link in place of meta, a shard, a segment, an index or the tail: never followed" {
	pristine
	S=shardId-000000000000
	last=$(basename "$(last_seg p 0)" .seg)
	later=$((T + 2 * 86400))	# everything has expired then
	echo more >in
	for rel in meta $S $S/tail $S/$last.seg $S/$last.idx; do
		what=$rel
		no_follow "$rel" "$what" kds-put -k k s <in || return 1
		no_follow "$rel" "$what" kds-reshard s split 0 || return 1
		KDS_NOW=$later no_follow "$rel" "$what" kds-expire s || return 1
	done
	for rel in meta $S $S/$last.seg; do
		OUT_OK=1 no_follow "$rel" "$rel" kds-get $E s || return 1
		no_follow "$rel" "$rel" kds-describe s || return 1
	done
	# (a consumer checkpoints what it delivered before it failed)
	no_follow meta meta kds-get -c cc s
	no_follow $S $S kds-get -c cc s
	no_follow lock lock kds-reshard s split 0
	no_follow lock lock kds-expire s
	no_follow meta.tmp meta.tmp kds-reshard s split 0
	no_follow meta.tmp meta.tmp kds-expire -r 1h s
}

@test "a symbolic link where the next segment is made: the roll fails, nothing written" {
	pristine
	S=shardId-000000000000
	c=$((10#$(kds-get $E --format '%o\n' p | tail -n 1 | cut -c2-) + 1))
	next=$(seq_of 0 "$c")
	# one record too big for the active segment: it rolls before writing
	long 3000 >big
	echo >>big
	no_follow "$S/$next.seg.tmp" "$S/$next.seg.tmp" kds-put -k k s <big
	# and the .tmp the roll would leave behind is not taken over either
	run -0 kds-put -p -k k p <big
	[ "$output" = "$S $next" ]
}

@test "a symbolic link in place of a consumer's files: never followed" {
	pristine
	S=shardId-000000000000
	no_follow consumers consumers kds-get -c cc s
	no_follow consumers/cc consumers/cc kds-get -c cc s
	no_follow consumers/cc/start "consumer cc: start" kds-get -c cc s
	no_follow consumers/cc/$S.checkpoint "$S.checkpoint" kds-get -c cc s
	no_follow consumers/cc/$S.lease "$S.lease" kds-get -c cc s
	# the checkpoint is written through its .tmp: the records were
	# delivered, the checkpoint stays where it was
	plant consumers/cc/$S.checkpoint.tmp
	snap before
	run -1 --separate-stderr kds-get -c cc s
	stderr_is "kds-get: s: consumer cc: $S.checkpoint.tmp: Too many levels of symbolic links"
	[ "${lines[0]}" = rec-101 ]
	[ "${#lines[@]}" -eq 200 ]
	unchanged "$before"
}

@test "partition keys: empty, 257 characters, not UTF-8: exit 1, nothing written" {
	mkstream s -n 2
	k257=$(long 257)
	k257e=$(for ((j = 0; j < 257; j++)); do printf 'é'; done)
	echo x >in
	refused 1 "kds-put: s: record 1: empty partition key" kds-put -k '' s <in
	refused 1 "kds-put: s: record 1: empty partition key" kds-put -f 1 -d , s <<<",x"
	snap BEFORE
	for k in "$k257" "$k257e" "$(long 5000)"; do
		refused 1 "kds-put: s: record 1: partition key longer than 256 characters" \
		    kds-put -k "$k" s <in || return 1
		refused 1 "kds-put: s: record 1: partition key longer than 256 characters" \
		    kds-put -f 1 -d , s <<<"$k,x" || return 1
	done
	unset BEFORE
	snap BEFORE
	for k in $'\xff' $'a\xc3' $'\xc0\xaf' $'\xed\xa0\x80' $'\xf4\x90\x80\x80' $'\xfe\xff'; do
		refused 1 "kds-put: s: record 1: partition key is not valid UTF-8" \
		    kds-put -k "$k" s <in || return 1
		refused 1 "kds-put: s: record 1: partition key is not valid UTF-8" \
		    kds-put -f 1 -d , s <<<"$k,x" || return 1
	done
	unset BEFORE
	# the same through jsonl
	refused 1 "kds-put: s: record 1: empty partition key" \
	    kds-put -i jsonl s <<<'{"PartitionKey":"","Data":"eA=="}'
	refused 1 "kds-put: s: record 1: partition key longer than 256 characters" \
	    kds-put -i jsonl s <<<"{\"PartitionKey\":\"$k257\",\"Data\":\"eA==\"}"
	refused 1 "kds-put: s: record 1: partition key longer than 256 characters" \
	    kds-put -i jsonl s <<<"{\"PartitionKey\":\"$k257e\",\"Data\":\"eA==\"}"
	# control characters are valid UTF-8, and stored as given
	run -0 --separate-stderr kds-put -k $'a\nb\e' s <in
	run -0 kds-get $E --format '%K\n' s
	[ "$output" = 4 ]
}

@test "explicit hash keys: out of range or not numbers: exit 2, nothing written" {
	mkstream s -n 2
	echo x >in
	snap BEFORE
	for h in -1 340282366920938463463374607431768211456 \
	    340282366920938463463374607431768211457 999999999999999999999999999999999999999999 \
	    1e3 0x10 ' 1' '1 ' +1 '' 1.0 abc '１' "$(long 5000 9)"; do
		# shown whole up to 255 bytes, else its first 252 and "..."
		v=$h && [ "${#h}" -le 255 ] || v="${h:0:252}..."
		refused 2 "kds-put: bad explicit hash key '$v': a decimal in [0, 2^128-1]" \
		    kds-put -E "$h" -k k s <in || return 1
	done
	unset BEFORE
	# the limits themselves are fine
	run -0 --separate-stderr kds-put -p -E 0 -k k s <in
	[[ $output == "shardId-000000000000 "* ]]
	run -0 --separate-stderr kds-put -p -E "$HMAX" -k k s <in
	[[ $output == "shardId-000000000001 "* ]]
	run -0 --separate-stderr kds-put -p -E 000000000000000000000000000000000000000000000000001 -k k s <in
	# through jsonl: a failure of the record, exit 1
	snap BEFORE
	for h in '"-1"' '"340282366920938463463374607431768211456"' '"1e3"' '""'; do
		refused 1 "kds-put: s: record 1: explicit hash key '$(eval echo "$h")' is not a decimal in [0, 2^128-1]" \
		    kds-put -i jsonl s <<<"{\"PartitionKey\":\"k\",\"Data\":\"eA==\",\"ExplicitHashKey\":$h}" ||
		    return 1
	done
	unset BEFORE
	snap BEFORE
	for h in 1 null '[]' '{}' true; do
		refused 1 "kds-put: s: record 1: ExplicitHashKey is not a string" \
		    kds-put -i jsonl s <<<"{\"PartitionKey\":\"k\",\"Data\":\"eA==\",\"ExplicitHashKey\":$h}" ||
		    return 1
	done
	unset BEFORE
}

@test "explicit hash keys with control characters: one escaped line" {
	mkstream s
	for h in "${CONTROL[@]}"; do
		one_line kds-put 2 kds-put -E "$h" -k k s </dev/null || return 1
	done
}

# The numbers every numeric option is tried with: negative, zero where
# that is out of range, past 2^64 and past 2^63, signs, spaces, other
# bases, fractions, and thousands of digits.
OVER=(-1 -0 18446744073709551615 18446744073709551616 9223372036854775808
    99999999999999999999999 ' 1' '1 ' +1 0x10 1e3 1.5 '' "$NINE5000")
# The same for options whose limit is 2^64 - 1, and for hash keys.
OVER64=(-1 -0 18446744073709551616 36893488147419103232 99999999999999999999999
    ' 1' '1 ' +1 0x10 1e3 1.5 '' "$NINE5000")
OVER128=(-1 -0 340282366920938463463374607431768211456
    340282366920938463463374607431768211457 "$NINE40" ' 1' '1 ' +1 0x10
    1e3 1.5 '' "$NINE5000")

@test "kds-create: every numeric option negative, huge or past 64 bits: exit 2, nothing made" {
	snap BEFORE
	for v in "${OVER[@]}" 0 10001; do
		refused 2 "kds-create: bad shard count '${v:0:76}$([ ${#v} -gt 79 ] && echo ...)': 1 to 10000" \
		    kds-create -n "$v" s || return 1
	done
	unset BEFORE
	for v in "${OVER[@]/%/s}" 0s 106751991167300d 9223372036854775807s 8761h \
	    -1h 99999999999999999999d 213503982335s; do
		[ ${#v} -le 79 ] || v=${v:0:76}...
		[ "${v:0:1}" != - ] || [ "$v" = -1s ] || [ "$v" = -0s ] || [ "$v" = -1h ] ||
		    continue
		capture kds-create -r "$v" s
		[ "$status" -eq 2 ] && [[ $stderr == "kds-create: bad retention '"*"': a number and s, m, h or d, from 1s to 8760h" ]] ||
		    { echo "-r $v: $status $stderr" >&2; return 1; }
		capture kds-create --segment-age "$v" s
		[ "$status" -eq 2 ] && [[ $stderr == "kds-create: bad segment age '"*"': a number and s, m, h or d, from 1s to 8760h" ]] ||
		    { echo "--segment-age $v: $status $stderr" >&2; return 1; }
	done
	for v in "${OVER[@]}" 0 4095 1073741825 17179869184G 16777216T 18014398509481984K; do
		capture kds-create --segment-bytes "$v" s
		[ "$status" -eq 2 ] && [[ $stderr == "kds-create: bad segment size '"*"': 4096 to 1G bytes" ]] ||
		    { echo "--segment-bytes $v: $status $stderr" >&2; return 1; }
	done
	[ -z "$(ls -A)" ]
}

@test "kds-put, kds-get: every numeric option negative, huge or past 64 bits: exit 2" {
	mkstream s
	echo x | kds-put -k k s
	snap BEFORE
	for v in "${OVER[@]}" 0 1000001; do
		one_line kds-put 2 kds-put -f "$v" s </dev/null || return 1
	done
	unset BEFORE
	refused 2 "kds-put: bad field number '18446744073709551616'" kds-put -f 18446744073709551616 s </dev/null
	snap BEFORE
	for v in "${OVER64[@]}"; do
		one_line kds-get 2 kds-get $E -n "$v" s || return 1
	done
	unset BEFORE
	refused 2 "kds-get: bad limit '18446744073709551616'" kds-get $E -n 18446744073709551616 s
	refused 2 "kds-get: bad limit '-1'" kds-get $E -n -1 s
	snap BEFORE
	for v in "${OVER64[@]}" 0; do
		one_line kds-get 2 kds-get -c cc -b "$v" s || return 1
	done
	unset BEFORE
	[ ! -e s/consumers ]
	snap BEFORE
	for v in "${OVER[@]/%/s}" 99999999999999999999d; do
		one_line kds-get 2 kds-get --idle-timeout "$v" s || return 1
	done
	unset BEFORE
	snap BEFORE
	for v in "${OVER[@]}" 0 1 100000000000000000000000000000000000000000 \
	    10000000000000000000000000000000000000001 99999999999999999999 \
	    1000000000000100000000000000000001; do
		one_line kds-get 2 kds-get -i AT_SEQUENCE_NUMBER --sequence "$v" s || return 1
		one_line kds-get 2 kds-get -i AFTER_SEQUENCE_NUMBER --sequence "$v" s || return 1
	done
	unset BEFORE
	snap BEFORE
	for v in "${OVER64[@]/1.5}" 9223372036854775 9223372036854775807 1e9 \
	    -1764324000 1764324000.x 2025-13-01 2025-11-28T25:00 0000-01-01 \
	    99999-01-01 2025-11-28T10:00+99:00; do
		one_line kds-get 2 kds-get --timestamp "$v" s || return 1
	done
	unset BEFORE
}

@test "kds-get --idle-timeout whose milliseconds overflow: refused, not an instant exit" {
	mkstream s
	# 106751991167300 days in seconds fits 64 bits; in milliseconds it
	# does not, and must not wrap to a timeout already past
	run --separate-stderr timeout 2 kds-get --idle-timeout 106751991167300d s
	[ "$status" -eq 2 ]
	[ "$stderr" = "kds-get: bad idle timeout '106751991167300d': a number and s, m, h or d" ]
}

@test "kds-reshard, kds-expire: split keys and counts negative, huge or past 64 bits: exit 2" {
	mkstream s -n 2
	snap BEFORE
	for v in "${OVER128[@]}"; do
		one_line kds-reshard 2 kds-reshard s split 0 -- "$v" || return 1
	done
	unset BEFORE
	refused 2 "kds-reshard: bad hash key '340282366920938463463374607431768211456': a decimal from 0 to 2^128-1" \
	    kds-reshard s split 0 340282366920938463463374607431768211456
	refused 2 "kds-reshard: bad hash key '-1': a decimal from 0 to 2^128-1" \
	    kds-reshard s split 0 -- -1
	# without --, getopt takes -1 for an option
	refused_usage 2 "kds-reshard: invalid option -- '1'" kds-reshard s split 0 -1
	snap BEFORE
	for v in "${OVER[@]}" 0 10001; do
		one_line kds-reshard 2 kds-reshard s scale -- "$v" || return 1
	done
	unset BEFORE
	refused 2 "kds-reshard: bad shard count '18446744073709551616': 1 to 10000" \
	    kds-reshard s scale 18446744073709551616
	refused 2 "kds-reshard: bad shard count '\\n': 1 to 10000" kds-reshard s scale $'\n'
	snap BEFORE
	for v in "${OVER[@]/%/s}" 0s 8761h 106751991167300d 99999999999999999999d; do
		one_line kds-expire 2 kds-expire -r "$v" s || return 1
	done
	unset BEFORE
	refused 2 "kds-expire: bad retention '1\\nh': a number and s, m, h or d, from 1s to 8760h" \
	    kds-expire -r $'1\nh' s
}

# jsonl RECORD...: one record a line.
jsonl() {
	printf '%s\n' "$@"
}

@test "jsonl: broken base64, wrong types, missing fields, nested junk: exit 1, nothing written" {
	mkstream s -n 2
	r="kds-put: s: record 1"
	snap BEFORE
	for d in '!!!' YQ YQ= '=' '====' YR== 'YQ==YQ==' Y -_-_ 'YWJj=' 'é' 'YQ==\n=' '\u0000'; do
		if [[ $d == *u0000* ]]; then
			run -1 --separate-stderr kds-put -i jsonl s <<<"{\"PartitionKey\":\"k\",\"Data\":\"$d\"}"
			[[ $stderr == "$r: bad JSON at column "* ]]
			continue
		fi
		refused 1 "$r: Data is not valid base64" \
		    kds-put -i jsonl s <<<"{\"PartitionKey\":\"k\",\"Data\":\"$d\"}" || return 1
	done
	unset BEFORE
	snap BEFORE
	for v in 1 1.5 null true '[]' '{}' '["eA=="]' '{"b64":"eA=="}'; do
		refused 1 "$r: Data is not a string" \
		    kds-put -i jsonl s <<<"{\"PartitionKey\":\"k\",\"Data\":$v}" || return 1
		refused 1 "$r: PartitionKey is not a string" \
		    kds-put -i jsonl s <<<"{\"PartitionKey\":$v,\"Data\":\"eA==\"}" || return 1
	done
	unset BEFORE
	refused 1 "$r: PartitionKey missing" kds-put -i jsonl s <<<'{"Data":"eA=="}'
	refused 1 "$r: PartitionKey missing" kds-put -i jsonl s <<<'{}'
	refused 1 "$r: Data missing" kds-put -i jsonl s <<<'{"PartitionKey":"k"}'
	refused 1 "$r: Data missing" kds-put -i jsonl s <<<'{"partitionkey":"k","data":"eA==","PartitionKey":"k"}' ||
	    refused 1 "$r: unknown field 'partitionkey'" kds-put -i jsonl s <<<'{"partitionkey":"k","data":"eA==","PartitionKey":"k"}'
	snap BEFORE
	for j in '[]' '[{"PartitionKey":"k","Data":"eA=="}]'; do
		refused 1 "$r: not a JSON object" kds-put -i jsonl s <<<"$j" || return 1
	done
	unset BEFORE
	snap BEFORE
	for j in '"x"' 1 null '{' '{"PartitionKey":"k","Data":"eA=="' \
	    '{"PartitionKey":"k","Data":"eA=="}junk' '{"PartitionKey":"k","Data":"eA==",}' \
	    "{'PartitionKey':'k'}" '{"PartitionKey":"k","PartitionKey":"j","Data":"eA=="}' \
	    '{"PartitionKey":"\ud800","Data":"eA=="}' '{"PartitionKey":"k\u0000","Data":"eA=="}' \
	    $'{"PartitionKey":"k\x01","Data":"eA=="}' $'{"PartitionKey":"k","Data":"eA==","\e[31m":1}' \
	    $'\xff{"PartitionKey":"k","Data":"eA=="}' \
	    "$(printf '[%.0s' {1..5000})" "{\"a\":$(printf '{"a":%.0s' {1..3000})1$(printf '}%.0s' {1..3000})}"; do
		one_line kds-put 1 kds-put -i jsonl s <<<"$j" || return 1
		[[ $stderr == "$r: "* ]] || { echo "$stderr" >&2; return 1; }
	done
	unset BEFORE
	# a field nobody asked for, however deep, is refused: a typo must not
	# change where a record goes
	snap BEFORE
	for j in '{"PartitionKey":"k","Data":"eA==","Bogus":1}' \
	    '{"PartitionKey":"k","Data":"eA==","ExplicitHashkey":"1"}' \
	    "{\"PartitionKey\":\"k\",\"Data\":\"eA==\",\"x\":$(printf '[%.0s' {1..1000})$(printf ']%.0s' {1..1000})}"; do
		one_line kds-put 1 kds-put -i jsonl s <<<"$j" || return 1
		[[ $stderr == "$r: unknown field '"*"'" ]] || { echo "$stderr" >&2; return 1; }
	done
	unset BEFORE
}

@test "huge lines: past 1 MiB of data, past the line buffer, no newline at all: exit 1, nothing written" {
	mkstream s
	big="record larger than 1048576 bytes (partition key and data)"
	# 1 MiB of data and a 1-byte key: one byte too many
	cd "$BATS_TEST_TMPDIR" || return 1	# the inputs are not snapped
	python3 -c 'import sys; sys.stdout.write("a" * 1048576 + "\n")' >line
	cd w || return 1
	refused 1 "kds-put: s: record 1: $big" kds-put -k k s <../line
	python3 -c 'import base64, sys; sys.stdout.write("{\"PartitionKey\":\"k\",\"Data\":\"%s\"}\n" % base64.b64encode(b"a" * 1048576).decode())' >../j
	refused 1 "kds-put: s: record 1: $big" kds-put -i jsonl s <../j
	# lines far longer than any record: 10 MB with and without a newline
	head -c 10000000 /dev/zero | tr '\0' a >../huge
	refused 1 "kds-put: s: record 1: $big" kds-put -k k s <../huge
	refused 1 "kds-put: s: record 1: $big" kds-put -i jsonl s <../huge
	refused 1 "kds-put: s: record 1: $big" kds-put -0 -k k s <../huge
	# a valid record whose line holds megabytes of an unknown member
	python3 -c 'import sys; sys.stdout.write("{\"PartitionKey\":\"k\",\"Data\":\"eA==\",\"x\":\"%s\"}\n" % ("a" * 4000000))' >../junk
	refused 1 "kds-put: s: record 1: $big" kds-put -i jsonl s <../junk
	# and the largest record that fits still goes in
	python3 -c 'import sys; sys.stdout.write("a" * 1048575 + "\n")' >../line
	run -0 --separate-stderr kds-put -p -k k s <../line
	[ "$output" = "shardId-000000000000 $(seq_of 0 1)" ]
}
