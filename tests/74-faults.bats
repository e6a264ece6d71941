#!/usr/bin/env bats
# 74-faults: an I/O error at every call, in turn, of every tool that writes.
# strace fails the 1st, then the 2nd, ... call of a family (write, fsync,
# rename, openat, ...) with ENOSPC or EIO until the tool gets through (in
# make check-full; make check fails every STEPth call from the FIRSTth:
# see helper.bash).  At each failure: exit 1, one line naming the error,
# and a stream that reads without error and holds every record that was
# acknowledged.

load helper

setup() {
	kds_setup
	command -v strace >/dev/null || skip "no strace"
	fixed_clock
}

# The system's words for the errno names we inject.
errtext() {
	case $1 in
	ENOSPC) echo "No space left on device" ;;
	EIO) echo "Input/output error" ;;
	esac
}

# failed TOOL ERRNO N TEXT: the run that just ended failed as it should,
# with the one line "TOOL: s: ...TEXT" on stderr.  (Builtins only: it
# runs at most crash points.)
failed() {
	local e=
	IFS= read -r -d '' e <err || true
	[ "$status" -eq 1 ] || { echo "$2 at call $3: exit $status: $e" >&2; return 1; }
	[[ $e == "$1: s: "*"$4"$'\n' && ${e%$'\n'} != *$'\n'* ]] || {
		echo "$2 at call $3: stderr: $e" >&2
		return 1
	}
}

# calls SYSCALL: how many SYSCALL calls the last trace shows.
calls() {
	grep -c -E "^[0-9]+ +$1\(" trace
}

# loader_opens TOOL: how many files the dynamic loader opens before main()
# (a failure there is the loader's, not ours: we start after them).  Only
# the openat lines: the trace ends with a line of the exit, which counted
# once and left the tool's first open of its own (the stream) untried.
loader_opens() {
	strace -f -o trace -e trace=openat "$1" --version >/dev/null
	calls openat
}

# each SYSCALL ERRNO CMD...: run CMD (in a fresh copy of base as s, stdin
# from in, stdout to out, stderr to err) with the nth SYSCALL failing,
# n = FIRST, FIRST + STEP, ... (openat: counted from the first after the
# loader's), calling check after each, until CMD makes fewer than n
# calls.  A failure CMD lives with (an index write: the index is a cache)
# ends in success, and the calls after it are still tried.  One syscall
# at a time: strace counts each name apart, and a list would also fail
# the first write of the error message itself.
each() {
	local call=$1 err=$2 start=1 n fails=0 text
	shift 2
	[ "$call" != openat ] || start=$(($(loader_opens "$1") + 1))
	text=$(errtext "$err")
	for ((n = start + PHASE; n <= 200; n += STEP)); do
		rm -rf s && cp -a base s
		status=0
		strace -f -o trace -e trace="$call" \
		    -e inject="$call":error="$err":when=$n "$@" <in >out 2>err || status=$?
		# past its last call?  (bash reads the trace itself: a process
		# more at every crash point adds up)
		if [[ $(<trace) != *INJECTED* ]]; then
			[ "$status" -eq 0 ] || { echo "$*: exit $status: $(cat err)" >&2; return 1; }
			# CMD does make the call (a wrong name would test nothing),
			# and, when every call was tried, fails at one at least
			[ "$(calls "$call")" -ge "$start" ] ||
			    { echo "no $call in $*?" >&2; return 1; }
			[ "$fails" -gt 0 ] || [ "$STEP" -gt 1 ] ||
			    { echo "$*: never failed at a $call" >&2; return 1; }
			return 0
		fi
		if [ "$status" -ne 0 ]; then
			fails=$((fails + 1))
			failed "$1" "$err" "$n" "$text" || return 1
		fi
		check "$n" || { echo "after $err at $call call $n" >&2; return 1; }
	done
	echo "$* still failing after 200 calls of $call" >&2
	return 1
}

# put_check: every acknowledged record reads back as put, once; every
# record read is one of the input's, in input order per shard.  (One awk
# for all of it: it runs at every crash point.)
put_check() {
	local cut=0
	# a line cut short by a failed write of stdout acknowledges nothing
	[ ! -s out ] || [ -z "$(tail -c 1 out)" ] || cut=1
	kds-get $E --format '%p %o %s\n' s >stored || return 1
	awk -v cut="$cut" '
	FILENAME == ARGV[1] { put[FNR] = $0; rank[$0] = FNR; next }	# in
	FILENAME == ARGV[2] { ack[FNR] = $0; acks = FNR; next }		# out
	{									# stored
		k = $1 " " $2
		if (k in have) { print "stored twice: " k; bad = 1 }
		have[k] = $3
		if ($3 ~ /^old-/) { old++; next }
		if (!($3 in rank)) { print "a record that was never put: " $0; bad = 1; next }
		if (rank[$3] <= last[$1]) { print "out of input order: " $0; bad = 1 }
		last[$1] = rank[$3]
	}
	END {
		# nothing acknowledged is missing or changed
		for (i = 1; i <= acks - cut; i++) {
			split(ack[i], a, " ")
			k = a[1] " " a[2]
			if (!(k in have)) { print "lost: " ack[i] " " put[i]; bad = 1 }
			else if (have[k] != put[i]) { print "changed: " ack[i] " " have[k]; bad = 1 }
		}
		# old records intact
		if (old != 20) { print old + 0 " old records, not 20"; bad = 1 }
		exit bad
	}' in out stored >&2
}

put_base() {
	mkstream base -n 2 --segment-bytes 4096
	lines 20 old- | kds-put base
	seq -f 'new-%04.0f-padding-padding' 1 200 >in
}

@test "kds-put: ENOSPC at any write, EIO at any fsync, rename or open" {
	no_leak_check
	put_base
	check() { put_check; }
	each write ENOSPC kds-put -p s
	each pwrite64 ENOSPC kds-put -p s
	each fdatasync EIO kds-put -p --sync=always s
	each fsync EIO kds-put -p --sync=always s
	each renameat2 EIO kds-put -p s
	each openat EIO kds-put -p s
}

# A consumer's checkpoint: after a failure, the next run delivers every
# record the failed one did not deliver in full (at least once).
@test "kds-get -c: an I/O error at any call loses no record for the consumer" {
	no_leak_check
	mkstream base -n 2
	lines 300 r | kds-put base
	: >in
	lines 300 r | sort >want
	check() {
		kds-get -c c s >second || return 1
		sort -u out second >seen
		same seen want
	}
	each write ENOSPC kds-get -c c s
	each fsync EIO kds-get -c c s
	each renameat EIO kds-get -c c s
	each linkat EIO kds-get -c c s
	each mkdirat ENOSPC kds-get -c c s
	each openat EIO kds-get -c c s
}

# kds-expire: whatever it managed to do, readers see exactly the records
# inside the retention, and a second run finishes the job.
@test "kds-expire: an I/O error at any call leaves the window readable" {
	no_leak_check
	mkstream base -r 1h --segment-bytes 4096 --segment-age 10m
	for h in 0 1 2 3; do
		lines 100 "h$h-" | put_at $((T + h * 1800)) -k k base
	done
	: >in
	export KDS_NOW=$((T + 3 * 1800 + 60))
	kds-get $E base >window
	[ "$(wc -l <window)" -eq 200 ]
	check() {
		kds-get $E s >now || return 1
		same now window || return 1
		kds-expire s || return 1
		kds-get $E s >now && same now window
	}
	each unlinkat EIO kds-expire s
	each openat EIO kds-expire s
	each fsync EIO kds-expire s
}

# kds-reshard: a failed step changes nothing that a reader or writer could
# trip over: every record reads back once, puts go on, and it can be redone.
@test "kds-reshard scale: an I/O error at any call leaves a usable stream" {
	no_leak_check
	mkstream base -n 2
	lines 100 r | kds-put base
	: >in
	lines 100 r | sort >want
	check() {
		kds-get $E s >now || return 1
		sort -o now now
		same now want || return 1
		echo more | kds-put s || return 1
		kds-reshard s scale 3 >/dev/null || return 1
		kds-get $E s >now || return 1
		mapfile -t got <now
		[ "${#got[@]}" -eq 101 ]
	}
	each write ENOSPC kds-reshard s scale 3
	each pwrite64 ENOSPC kds-reshard s scale 3
	each fsync EIO kds-reshard s scale 3
	each fdatasync EIO kds-reshard s scale 3
	each renameat EIO kds-reshard s scale 3
	each renameat2 EIO kds-reshard s scale 3
	each mkdirat ENOSPC kds-reshard s scale 3
	each openat EIO kds-reshard s scale 3
}

# RLIMIT_FSIZE: a file size limit fails a write with EFBIG (kds-put ignores
# SIGXFSZ, which would kill it mid-batch); at every limit, exactly the
# acknowledged records are kept.
@test "kds-put under a file size limit: exit 1, 'File too large', acked kept" {
	mkstream base -n 2 --segment-bytes 64K
	lines 20 old- | kds-put base
	seq -f 'new-%04.0f-padding-padding' 1 2000 >in
	for kb in 1 2 4 8 16 24 32; do
		rm -rf s && cp -a base s
		status=0
		(ulimit -f "$kb" && exec kds-put -p s) <in >out 2>err || status=$?
		[ "$status" -eq 1 ] || { echo "-f $kb: exit $status" >&2; return 1; }
		[ "$(wc -l <err)" -eq 1 ] && [[ $(cat err) == "kds-put: s: "*"File too large" ]] || {
			echo "-f $kb: $(cat err)" >&2
			return 1
		}
		put_check || { echo "-f $kb" >&2; return 1; }
	done
}
