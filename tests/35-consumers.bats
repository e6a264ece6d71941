#!/usr/bin/env bats
# 35-consumers: kds-get -c NAME, named consumers with checkpoints: where
# they start, at-least-once through kill -9, --exec batches, several
# processes sharing the shards by leases, --reset and --delete.

load helper

SPLIT=$TOOLS/kds-split.py

# ckpt STREAM NAME SHARD: the checkpoint file's line, or "none".
ckpt() {
	local f
	f=$1/consumers/$2/$(printf 'shardId-%012d' "$3").checkpoint
	if [ -f "$f" ]; then cat "$f"; else echo none; fi
}

# wait_until 'SHELL CONDITION': poll it for up to 20 s.
wait_until() {
	local i
	for ((i = 0; i < 400; i++)); do
		eval "$1" && return 0
		sleep 0.05
	done
	echo "wait_until: $* never held" >&2
	return 1
}

@test "-c: a new consumer starts at TRIM_HORIZON and moves its checkpoint on" {
	mkstream s
	lines 5 r | kds-put s
	run -0 --separate-stderr kds-get -c a s
	output_is "$(lines 5 r)"
	[ -z "$stderr" ]
	[[ $(ckpt s a 0) =~ ^$(seq_of 0 5)\ [0-9]+$ ]]
	grep -qx TRIM_HORIZON s/consumers/a/start
	run -0 --separate-stderr kds-get -c a s
	[ -z "$output" ]
	printf 'x\ny\n' | kds-put s
	run -0 --separate-stderr kds-get -c a s
	output_is $'x\ny'
	[[ $(ckpt s a 0) == "$(seq_of 0 7) "* ]]
}

@test "-c with -n: the checkpoint moves past the records delivered only" {
	mkstream s -n 2
	lines 10 r | kds-put s
	run -0 kds-get -c a -n 3 --format '%o\n' s
	got="$output"
	run -0 kds-get -c a --format '%o\n' s
	# together: every record once
	[ "$(printf '%s\n%s\n' "$got" "$output" | sort | uniq -d)" = "" ]
	[ "$(printf '%s\n%s\n' "$got" "$output" | wc -l)" -eq 10 ]
}

@test "-c -i LATEST: only records put after the consumer was made, in every later run" {
	mkstream s -n 2
	lines 4 old | kds-put s
	run -0 --separate-stderr kds-get -c a -i LATEST s
	[ -z "$output" ]
	grep -q '^AT_TIMESTAMP [0-9]*$' s/consumers/a/start
	lines 4 new | kds-put s
	# a later run's -i does not move a consumer that exists
	run -0 --separate-stderr kds-get -c a -i TRIM_HORIZON s
	[ "$(sort <<<"$output")" = "$(lines 4 new)" ]
}

@test "-c -i AT_TIMESTAMP for a new consumer" {
	fixed_clock
	mkstream s
	for i in 1 2 3 4; do echo "r$i" | put_at $((T + i)) s; done
	run -0 --separate-stderr kds-get -c a -i AT_TIMESTAMP --timestamp $((T + 3)) s
	output_is $'r3\nr4'
}

@test "consumers with different names are independent: each sees every record" {
	mkstream s -n 3
	lines 30 r | kds-put s
	run -0 kds-get -c a -n 7 s
	run -0 kds-get -c b s
	[ "$(sort <<<"$output")" = "$(lines 30 r | sort)" ]
	run -0 kds-get -c a s
	[ "${#lines[@]}" -eq 23 ]
}

@test "two consumers at different speeds on one stream, following" {
	mkstream s -n 2
	kds-get -F -c fast --format '%p %s\n' s >fast &
	f=$!
	kds-get -F -c slow -b 7 --exec 'sleep 0.05; cat' --format '%p %s\n' s >slow &
	sl=$!
	for i in $(seq 1 10); do lines 20 "b$i-" | kds-put s; done
	wait_until 'test "$(wc -l <fast)" -eq 200'
	wait_until 'test "$(wc -l <slow)" -eq 200'
	kill $f $sl
	wait $f
	wait $sl
	for f in fast slow; do
		[ "$(cut -d' ' -f2 $f | sort)" = "$(for i in $(seq 1 10); do lines 20 "b$i-"; done | sort)" ]
		# each shard in put order
		for sh in 0 1; do
			grep "^shardId-00000000000$sh " $f | cut -d' ' -f2 >got.$sh
			sort -t- -k1.2n -k2n got.$sh >want.$sh
			same got.$sh want.$sh
		done
	done
}

@test "--exec: a batch of at most -b records on CMD's stdin; checkpoint on exit 0" {
	mkstream s
	lines 10 r | kds-put s
	run -0 --separate-stderr kds-get -c a -b 4 --exec 'tr "\n" " "; echo' s
	output_is $'r1 r2 r3 r4 \nr5 r6 r7 r8 \nr9 r10 '
	[[ $(ckpt s a 0) == "$(seq_of 0 10) "* ]]
}

@test "--exec: CMD fails, kds-get stops with its status, the checkpoint stays" {
	mkstream s
	lines 10 r | kds-put s
	run -0 kds-get -c a -n 4 s
	run -3 --separate-stderr kds-get -c a -b 3 --exec 'cat >>seen; exit 3' s
	stderr_is "kds-get: s: cat >>seen; exit 3: exit status 3"
	[ "$(cat seen)" = $'r5\nr6\nr7' ]
	[[ $(ckpt s a 0) == "$(seq_of 0 4) "* ]]
}

@test "--exec: CMD killed by a signal: status 128 + signal, checkpoint stays" {
	mkstream s
	lines 3 r | kds-put s
	run -137 --separate-stderr kds-get -c a --exec 'kill -9 $$' s
	stderr_is 'kds-get: s: kill -9 $$: exit status 137'
	[ "$(ckpt s a 0)" = none ]
}

# CMD exits 0 having read nothing of a batch far larger than a pipe holds:
# not delivered, so not checkpointed, in every output format (lines, the
# default, has a path of its own).
@test "--exec: CMD exits 0 without reading its whole batch: exit 1, checkpoint stays" {
	mkstream s
	lines 30000 r | kds-put -k k s
	for o in "-o lines" "-0" "-o jsonl" "--format %s\n"; do
		run -1 --separate-stderr kds-get -c a -b 100000 $o --exec 'exit 0' s
		stderr_is "kds-get: s: --exec: the command did not read its whole batch" ||
		    { echo "($o)" >&2; return 1; }
		[ "$(ckpt s a 0)" = none ] || { echo "($o) checkpoint: $(ckpt s a 0)" >&2; return 1; }
	done
}

# The pipe to CMD, the fork of its shell and the wait for it, failing:
# exit 1, the stream and the call named, the checkpoint where it was.
@test "--exec: pipe, fork or wait failing: exit 1, one line, checkpoint stays" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	lines 3 r | kds-put s
	run -1 --separate-stderr strace -f -o /dev/null -e trace=pipe2 \
	    -e inject=pipe2:error=EMFILE kds-get -c a --exec cat s
	stderr_is "kds-get: s: pipe: Too many open files"
	run -1 --separate-stderr strace -f -o /dev/null -e trace=clone,clone3 \
	    -e inject=clone,clone3:error=EAGAIN kds-get -c a --exec cat s
	stderr_is "kds-get: s: fork: Resource temporarily unavailable"
	run -1 --separate-stderr strace -f -o /dev/null -e trace=wait4 \
	    -e inject=wait4:error=ECHILD kds-get -c a --exec 'cat >/dev/null' s
	stderr_is "kds-get: s: wait: No child processes"
	[ -z "$output" ]
	[ "$(ckpt s a 0)" = none ]
}

@test "kill -9 loop on a consumer with --exec: nothing skipped, duplicates only after a kill" {
	mkstream s -n 4
	lines 2000 r | kds-put s
	run=0
	while :; do
		run=$((run + 1))
		RUN=$run kds-get -c a -b 37 --exec 'sleep 0.002; sed "s/^/$RUN /" >>log' s 2>>err &
		pid=$!
		# kills at random in the first 60 ms, later ones later, so
		# that a loaded machine still gets through; the 40th run is
		# left to finish
		if [ "$run" -ge 40 ]; then
			wait $pid
			break
		fi
		sleep "0.$(printf %03d $((RANDOM % 60 + run * 5)))"
		if kill -9 $pid 2>/dev/null; then
			wait $pid || true
			killed[$run]=1
		else
			wait $pid	# it finished: exit 0
			break
		fi
	done
	sleep 0.1	# a CMD orphaned by the last kill may still be writing
	[ ! -s err ]
	[ "${#killed[@]}" -ge 3 ]
	# every record, at least once
	[ "$(cut -d' ' -f2 log | sort -u)" = "$(lines 2000 r | sort)" ]
	# never twice within one run
	[ -z "$(sort log | uniq -d)" ]
	# a record seen twice: every delivery but the last was in a killed run
	awk '{ n[$2]++; runs[$2] = runs[$2] " " $1 } END { for (r in n) if (n[r] > 1) print runs[r] }' log |
	while read -r line; do
		set -- $line
		while [ $# -gt 1 ]; do
			[ "${killed[$1]-}" = 1 ] || { echo "run $1 not killed: $line" >&2; return 1; }
			shift
		done
	done
	echo "runs: $run, killed: ${#killed[@]}, duplicates: $(($(wc -l <log) - 2000))" >&3
}

@test "delivery to a closed pipe: the checkpoint moves only past what was written" {
	mkstream s
	python3 -c 'print("\n".join("%05d" % i + "x" * 994 for i in range(1, 2001)))' | kds-put s
	kds-get -c a -b 10 s | head -c 100000 >/dev/null
	c=$(ckpt s a 0 | cut -d' ' -f1)
	n=$((c - $(seq_of 0 0)))
	# the pipe took some records, not all 2 MB
	[ "$n" -ge 90 ]
	[ "$n" -lt 2000 ]
	run -0 kds-get -c a --format '%o\n' s
	[ "${lines[0]}" = "$(seq_of 0 $((n + 1)))" ]
	[ "${#lines[@]}" -eq $((2000 - n)) ]
}

@test "a full stdout: exit 1, the checkpoint stays" {
	mkstream s
	lines 5 r | kds-put s
	run -1 --separate-stderr bash -c 'kds-get -c b s >/dev/full'
	stderr_is "kds-get: s: stdout: No space left on device"
	[ "$(ckpt s b 0)" = none ]
}

# balanced PID...: the processes hold 1 + 2 or 3 flocks each, 11 in all.
balanced() {
	local p n t=0
	for p in "$@"; do
		n=$(awk -v p="$p" '$2 == "FLOCK" && $5 == p' /proc/locks | wc -l)
		[ "$n" -ge 3 ] && [ "$n" -le 4 ] || return 1
		t=$((t + n))
	done
	[ "$t" -eq 11 ]
}

@test "three processes of one consumer share eight shards; one killed, every record processed" {
	mkstream s -n 8
	for i in 1 2 3; do
		kds-get -F -c w --format '%p %s\n' s >out.$i 2>err.$i &
		pid[$i]=$!
	done
	# each takes its share, 3, 3 and 2 leases: in /proc/locks, a flock on
	# its worker file and one per lease
	wait_until 'balanced ${pid[1]} ${pid[2]} ${pid[3]}'
	lines 800 a | kds-put s
	wait_until 'test "$(cat out.1 out.2 out.3 | wc -l)" -ge 800'
	for i in 1 2 3; do
		[ -s out.$i ] || { echo "worker $i got nothing" >&2; return 1; }
	done
	# a shard is read by one process at a time
	for i in 1 2 3; do cut -d' ' -f1 out.$i | sort -u >shards.$i; done
	[ -z "$(cat shards.1 shards.2 shards.3 | sort | uniq -d)" ]
	kill -9 ${pid[1]}
	wait ${pid[1]} || true
	lines 800 b | kds-put s
	wait_until 'test "$(cat out.2 out.3 | grep -c '\'' b'\'')" -ge 800'
	kill ${pid[2]} ${pid[3]}
	wait ${pid[2]}
	wait ${pid[3]}
	[ ! -s err.2 ]
	[ ! -s err.3 ]
	# every record processed; the survivors took worker 1's shards over
	[ "$(cut -d' ' -f2 out.1 out.2 out.3 | sort -u)" = "$(printf '%s\n' $(lines 800 a) $(lines 800 b) | sort)" ]
	[ -n "$(comm -12 shards.1 <(grep ' b' out.2 out.3 | cut -d' ' -f1 | sed 's/.*://' | sort -u))" ]
	# its worker file was found dead and removed
	[ "$(ls s/consumers/w | grep -c '^worker\.')" -eq 0 ]
}

@test "a consumer reads parents before children, and marks a finished parent SHARD_END" {
	have_xxhash || skip "no libxxhash for the split stand-in"
	mkstream s
	lines 3 p | kds-put s
	python3 "$SPLIT" s 0 >/dev/null
	lines 4 c | kds-put s
	run -0 --separate-stderr kds-get -c a --format '%p %s\n' s
	[ "${#lines[@]}" -eq 7 ]
	[ "$(printf '%s\n' "${lines[@]:0:3}")" = "$(printf 'shardId-000000000000 p%d\n' 1 2 3)" ]
	[ "$(ckpt s a 0)" = SHARD_END ]
	[[ $(ckpt s a 1) == 2000* ]]
	[[ $(ckpt s a 2) == 3000* ]]
}

@test "a following consumer carries on past a split" {
	have_xxhash || skip "no libxxhash for the split stand-in"
	mkstream s
	lines 3 p | kds-put s
	: >out
	kds-get -F -c a --format '%p %s\n' s >out 2>err &
	pid=$!
	wait_until 'test "$(wc -l <out)" -eq 3'
	python3 "$SPLIT" s 0 >/dev/null
	lines 4 c | kds-put s
	wait_until 'test "$(wc -l <out)" -eq 7'
	kill $pid
	wait $pid
	[ ! -s err ]
	[ "$(ckpt s a 0)" = SHARD_END ]
}

@test "--reset: the consumer starts again; --delete: it is gone" {
	mkstream s
	lines 3 r | kds-put s
	run -0 kds-get -c a s
	run -0 --separate-stderr kds-get -c a --reset s
	[ -z "$output" ]
	[ -z "$stderr" ]
	[ "$(ckpt s a 0)" = none ]
	run -0 kds-get -c a s
	output_is "$(lines 3 r)"
	run -0 --separate-stderr kds-get -c a --delete s
	[ ! -e s/consumers/a ]
	run -1 --separate-stderr kds-get -c a --delete s
	stderr_is "kds-get: s: consumer a: no such consumer"
	run -1 --separate-stderr kds-get -c zz --reset s
	stderr_is "kds-get: s: consumer zz: no such consumer"
}

@test "--reset and --delete are refused while a process of the consumer runs" {
	mkstream s
	kds-get -F -c a s >/dev/null &
	pid=$!
	wait_until 'test -e s/consumers/a/start'
	wait_until 'ls s/consumers/a | grep -q "^worker\."'
	run -1 --separate-stderr kds-get -c a --reset s
	stderr_is "kds-get: s: consumer a: in use by 1 process"
	run -1 --separate-stderr kds-get -c a --delete s
	stderr_is "kds-get: s: consumer a: in use by 1 process"
	kill $pid
	wait $pid
	run -0 kds-get -c a --delete s
}

@test "consumer names: 1 to 128 of [A-Za-z0-9_.-], not starting with a dot" {
	mkstream s
	long=$(printf 'x%.0s' $(seq 1 129))
	for n in "" .hidden "a/b" "a b" "ü" "$long" ..; do
		run -2 --separate-stderr kds-get -c "$n" s
		stderr_is "kds-get: bad consumer name '$n': 1 to 128 of A-Z a-z 0-9 _ . -, not starting with '.'"
	done
	[ ! -e s/consumers ]
	run -0 kds-get -c "A-z_0.9-${long:0:100}" s
}

@test "consumer usage errors: exit 2, one line" {
	mkstream s
	run -2 --separate-stderr kds-get --reset s
	stderr_is "kds-get: --reset and --delete go with -c"
	run -2 --separate-stderr kds-get --delete s
	stderr_is "kds-get: --reset and --delete go with -c"
	run -2 --separate-stderr kds-get -c a --reset --delete s
	stderr_is "kds-get: --reset and --delete do not go together"
	run -2 --separate-stderr kds-get -c a -s 0 s
	stderr_is "kds-get: -s does not go with -c: a consumer reads every shard"
	run -2 --separate-stderr kds-get -c a --sequence "$(seq_of 0 1)" s
	stderr_is "kds-get: -c starts at TRIM_HORIZON, LATEST or AT_TIMESTAMP"
	run -2 --separate-stderr kds-get -b 5 s
	stderr_is "kds-get: -b goes with -c or --exec"
	for b in 0 x -1; do
		run -2 --separate-stderr kds-get -c a -b "$b" s
		stderr_is "kds-get: bad batch size '$b'"
	done
	[ ! -e s/consumers ]
}

@test "a damaged checkpoint is an error naming it" {
	mkstream s
	lines 3 r | kds-put s
	run -0 kds-get -c a s
	echo garbage >s/consumers/a/shardId-000000000000.checkpoint
	run -1 --separate-stderr kds-get -c a s
	stderr_is "kds-get: s: shardId-000000000000.checkpoint: bad checkpoint"
}

# Making a consumer, each step failing in turn: the consumers directory,
# its sync, the consumer's own directory, the random name of the process's
# worker file.  Exit 1, one line with the directory or the call, nothing
# read; then a run without the fault starts the consumer from the top.
@test "making a consumer: mkdir, fsync or getrandom failing: exit 1, one line, nothing read" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	lines 3 r | kds-put s
	run -1 --separate-stderr strace -f -o /dev/null -e trace=mkdirat \
	    -e inject=mkdirat:error=ENOSPC:when=1 kds-get -c a s
	stderr_is "kds-get: s: consumers: mkdir: No space left on device"
	[ -z "$output" ]
	[ ! -e s/consumers ]
	run -1 --separate-stderr strace -f -o /dev/null -e trace=fsync \
	    -e inject=fsync:error=EIO:when=1 kds-get -c a s
	stderr_is "kds-get: s: consumers: fsync: Input/output error"
	[ -z "$output" ]
	[ ! -e s/consumers/a ]
	# (the mkdir of consumers, which exists now, is still the first)
	run -1 --separate-stderr strace -f -o /dev/null -e trace=mkdirat \
	    -e inject=mkdirat:error=ENOSPC:when=2 kds-get -c a s
	stderr_is "kds-get: s: consumers/a: mkdir: No space left on device"
	[ -z "$output" ]
	[ ! -e s/consumers/a ]
	# every getrandom fails (a kernel without it): the first of ours is
	# the worker file's
	run -1 --separate-stderr strace -f -o /dev/null -e trace=getrandom \
	    -e inject=getrandom:error=ENOSYS kds-get -c a s
	stderr_is "kds-get: s: consumer a: getrandom: Function not implemented"
	[ -z "$output" ]
	[ "$(ckpt s a 0)" = none ]
	[ -z "$(find s/consumers -name 'worker.*' -o -name '.worker.*')" ]
	run -0 --separate-stderr kds-get -c a s
	output_is "$(lines 3 r)"
}

# The checkpoint's write, sync and rename, failing after the records were
# printed: exit 1, the consumer and the file named with the call, the
# checkpoint as it was and no .tmp left, so that the next run delivers
# the same records again (at least once, never lost).
@test "a checkpoint that cannot be written: exit 1, file and call named, the old one stays" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	lines 3 r | kds-put s
	kds-get -c a s >/dev/null
	old=$(ckpt s a 0)
	[[ $old == "$(seq_of 0 3) "* ]]
	lines 2 x | kds-put s
	f=shardId-000000000000.checkpoint.tmp
	# renames: the start's .tmp, the worker file, then the checkpoint
	for c in "write ENOSPC -P $PWD/s/consumers/a/$f" "fsync EIO -P $PWD/s/consumers/a/$f" \
	    "renameat EIO"; do
		read -r call err p <<<"$c"
		when=1
		[ "$call" != renameat ] || when=3
		run -1 --separate-stderr strace -f -o /dev/null $p -e trace="$call" \
		    -e inject="$call:error=$err:when=$when" kds-get -c a s
		case $call in
		write) stderr_is "kds-get: s: consumer a: $f: write: No space left on device" ;;
		fsync) stderr_is "kds-get: s: consumer a: $f: fsync: Input/output error" ;;
		*) stderr_is "kds-get: s: consumer a: $f: rename: Input/output error" ;;
		esac || { echo "($c)" >&2; return 1; }
		output_is $'x1\nx2' || { echo "($c)" >&2; return 1; }
		[ "$(ckpt s a 0)" = "$old" ] || { echo "($c): checkpoint $(ckpt s a 0)" >&2; return 1; }
		[ -z "$(find s/consumers -name '*.tmp')" ] || { echo "($c): .tmp left" >&2; return 1; }
	done
	run -0 --separate-stderr kds-get -c a s
	output_is $'x1\nx2'
	[[ $(ckpt s a 0) == "$(seq_of 0 5) "* ]]
}

# Reading a checkpoint, and locking a shard's lease, failing: exit 1, the
# file and the call named (as a damaged checkpoint is: the name alone,
# without the consumer's), nothing read, the checkpoint as it was.
@test "a checkpoint unreadable or a lease unlockable: exit 1, file and call named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	lines 3 r | kds-put s
	kds-get -c a s >/dev/null
	old=$(ckpt s a 0)
	lines 2 x | kds-put s
	run -1 --separate-stderr strace -f -o /dev/null \
	    -P "$PWD/s/consumers/a/shardId-000000000000.checkpoint" -e trace=read \
	    -e inject=read:error=EIO kds-get -c a s
	stderr_is "kds-get: s: shardId-000000000000.checkpoint: read: Input/output error"
	[ -z "$output" ]
	[ "$(ckpt s a 0)" = "$old" ]
	# flocks: the worker file's, the count of workers (which tests its
	# own), then the shard's lease
	run -1 --separate-stderr strace -f -o /dev/null -e trace=flock \
	    -e inject=flock:error=ENOLCK:when=3 kds-get -c a s
	stderr_is "kds-get: s: shardId-000000000000.lease: lock: No locks available"
	[ -z "$output" ]
	[ "$(ckpt s a 0)" = "$old" ]
	run -0 --separate-stderr kds-get -c a s
	output_is $'x1\nx2'
}

# Fixing where a consumer starts: the start is written to .start.PID and
# linked to start.  The link failing must say that it was the link.
@test "the start of a new consumer failing to link: exit 1, 'start' and 'link' named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	lines 3 r | kds-put s
	run -1 --separate-stderr strace -f -o /dev/null -e trace=linkat \
	    -e inject=linkat:error=EIO kds-get -c a s
	stderr_is "kds-get: s: consumer a: start: link: Input/output error"
	[ -z "$output" ]
	[ ! -e s/consumers/a/start ]
	[ -z "$(find s/consumers -name '.start.*')" ]
}

# A process registers as worker.PID-HEX: made as .worker.PID-HEX, locked,
# renamed into place.  The lock or the rename failing must say which call
# failed (the file: by either of its names).
@test "the worker file failing to lock or rename: exit 1, the file and the call named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s
	lines 3 r | kds-put s
	run -1 --separate-stderr strace -f -o /dev/null -e trace=flock \
	    -e inject=flock:error=ENOLCK:when=1 kds-get -c a s
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "kds-get: s: consumer a: "?(.)"worker."+([0-9])-+([0-9a-f])": lock: No locks available" ]] ||
	    { echo "stderr: $stderr" >&2; return 1; }
	[ -z "$output" ]
	# renames: the start's .tmp, then the worker file
	run -1 --separate-stderr strace -f -o /dev/null -e trace=renameat \
	    -e inject=renameat:error=ENOSPC:when=2 kds-get -c a s
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "kds-get: s: consumer a: "?(.)"worker."+([0-9])-+([0-9a-f])": rename: No space left on device" ]] ||
	    { echo "stderr: $stderr" >&2; return 1; }
	[ -z "$output" ]
	[ -z "$(find s/consumers -name '*worker.*')" ]
}
