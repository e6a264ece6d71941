#!/usr/bin/env bats
# 32-get-follow: kds-get -F, following a stream as records arrive: waking
# on inotify, --idle-timeout, the end by signal or closed pipe, named
# shards, and carrying on past a reshard to the children of a shard.

load helper

SPLIT=$TOOLS/kds-split.py

# wait_for FILE N: until FILE has N lines (at most 10 s).
wait_for() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "wait_for: $1 has $(wc -l <"$1" 2>/dev/null) lines, not $2" >&2
	return 1
}

# watching PID: the follower has its inotify watches (it is in ppoll).
watching() {
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q ppoll "/proc/$1/syscall" 2>/dev/null && return 0
		[ "$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null)" = 271 ] && return 0
		sleep 0.05
	done
	return 1
}

@test "-F prints what is there, then records as they are put" {
	mkstream s
	lines 3 old | kds-put s
	kds-get -F s >out 2>err &
	pid=$!
	wait_for out 3
	watching $pid
	echo new1 | kds-put s
	wait_for out 4
	printf 'new2\nnew3\n' | kds-put s
	wait_for out 6
	kill -TERM $pid
	wait $pid
	[ "$(cat out)" = "$(printf 'old1\nold2\nold3\nnew1\nnew2\nnew3')" ]
	[ ! -s err ]
}

@test "-F after a long backlog still prints a new record at once" {
	mkstream s
	lines 300000 old | kds-put --sync=never s
	kds-get -F s >out 2>err &
	pid=$!
	wait_for out 300000
	watching $pid
	echo new1 | kds-put s
	wait_for out 300001
	[ "$(tail -n 1 out)" = new1 ]
	echo new2 | kds-put s
	wait_for out 300002
	kill -TERM $pid
	wait $pid
	same out <(lines 300000 old; printf 'new1\nnew2\n')
	[ ! -s err ]
}

@test "SIGTERM in the middle of a long backlog: exit 0, whole records" {
	mkstream s
	lines 1000000 r | kds-put --sync=never s
	for i in 1 2 3; do
		rm -f out
		kds-get -F s >out 2>err &
		pid=$!
		# once it writes, its handlers are in place; then a moment more
		until [ -s out ]; do sleep 0.01; done
		sleep 0.0$((i * 2))
		kill -TERM $pid
		rc=0
		wait $pid || rc=$?
		[ "$rc" -eq 0 ]
		[ ! -s err ]
		# a prefix of the stream, ending with a whole record
		[ ! -s out ] || [ "$(tail -c 1 out | od -An -c | tr -d ' ')" = '\n' ]
		n=$(wc -l <out)
		same out <(lines "$n" r)
	done
}

@test "-F across a segment roll, and -n stops it" {
	mkstream s --segment-bytes 4096
	echo first | kds-put s
	timeout 20 kds-get -F -n 4 --format '%S\n' s >out 2>err &
	pid=$!
	wait_for out 1
	python3 -c 'print("x" * 5000)' | kds-put s
	wait_for out 2
	printf 'a\nb\n' | kds-put s
	wait $pid
	[ "$(cat out)" = $'5\n5000\n1\n1' ]
	[ "$(segs s 0 | wc -l)" -ge 2 ]
	[ ! -s err ]
}

@test "-F waits on inotify, not in a polling loop" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -n 4
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 run -0 --separate-stderr strace -f -o trace -e trace=ppoll,poll,select,pselect6,nanosleep,clock_nanosleep \
	    kds-get -F --idle-timeout 2s s
	# one sleep for the whole idle time: no timer wake-ups in between
	[ "$(grep -cE 'ppoll|poll\(|select|nanosleep' trace)" -le 2 ]
}

@test "a record put is printed within 50 ms (median of 40)" {
	mkstream s
	run -0 python3 "$TOOLS/kds-latency.py" s 40 10
	[ "${#lines[@]}" -eq 40 ]
	median=$(printf '%s\n' "${lines[@]}" | sort -n | sed -n 20p)
	echo "median latency $median ms" >&3
	awk -v m="$median" 'BEGIN { exit !(m < 50) }'
}

@test "--idle-timeout: exit 0 after that long without a record" {
	mkstream s
	echo a | kds-put s
	start=$(date +%s.%N)
	run -0 --separate-stderr kds-get --idle-timeout 1s s
	end=$(date +%s.%N)
	output_is a
	[ -z "$stderr" ]
	awk -v s="$start" -v e="$end" 'BEGIN { d = e - s; exit !(d >= 1 && d < 3) }'
}

@test "--idle-timeout restarts with every record" {
	mkstream s
	kds-get -F --idle-timeout 1s s >out &
	pid=$!
	for i in 1 2 3; do
		sleep 0.6
		echo "r$i" | kds-put s
	done
	wait $pid
	[ "$(cat out)" = $'r1\nr2\nr3' ]
}

@test "--idle-timeout: a bad duration is a usage error" {
	mkstream s
	for v in 5 x 1.5s -1s; do
		run -2 --separate-stderr kds-get --idle-timeout "$v" s
		stderr_is "kds-get: bad idle timeout '$v': a number and s, m, h or d"
	done
}

@test "SIGINT and SIGTERM end -F cleanly: exit 0, output whole, nothing on stderr" {
	mkstream s
	lines 1000 r | kds-put s
	for sig in INT TERM; do
		kds-get -F s >out.$sig 2>err.$sig &
		pid=$!
		wait_for out.$sig 1000
		watching $pid
		kill -$sig $pid
		wait $pid
		same out.$sig <(lines 1000 r)
		[ ! -s err.$sig ]
	done
}

@test "a closed pipe downstream ends -F quietly, exit 0" {
	mkstream s
	echo a | kds-put s
	( kds-get -F s 2>err; echo "rc=$?" >rc ) | head -n 1 >out &
	wait_for out 1
	# head has gone; the next record meets the closed pipe
	for i in 1 2 3 4 5; do echo "b$i" | kds-put s; [ -s rc ] && break; sleep 0.2; done
	wait_for rc 1
	[ "$(cat rc)" = rc=0 ]
	[ ! -s err ]
	[ "$(cat out)" = a ]
}

# inotify out of instances or watches (per-user limits that every tail -f
# and editor shares): as tail -f does, follow by looking every 100 ms,
# saying so once on stderr; records put later still come, to the last.
# (strace: the stream's directory is watched first, then each shard's.)
@test "inotify out of instances or watches: -F looks every 100 ms, and says so" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -n 2
	lines 2 r | kds-put s
	for c in "inotify_init1 EMFILE" "inotify_add_watch ENOSPC 1" \
	    "inotify_add_watch ENOSPC 2"; do
		rm -f out err
		set -- $c
		strace -f -o /dev/null -e trace="$1" -e inject="$1":error="$2"${3:+:when=$3} \
		    kds-get -F --idle-timeout 2s s >out 2>err &
		pid=$!
		sleep 0.4
		echo "later $c" | kds-put -k k s
		wait "$pid" || { echo "($c) exit $?: $(cat err)" >&2; return 1; }
		[ "$(cat err)" = "kds-get: s: inotify resources exhausted: looking for new records every 100 ms" ] ||
		    { echo "($c) stderr: $(cat err)" >&2; return 1; }
		grep -qx "later $c" out || { echo "($c) the later record missing" >&2; return 1; }
		[ "$(grep -c '^r' out)" -eq 2 ]
	done
	# a kernel without inotify: the same, in the kernel's words
	strace -f -o /dev/null -e trace=inotify_init1 -e inject=inotify_init1:error=ENOSYS \
	    kds-get -F --idle-timeout 1s s >out 2>err
	[ "$(cat err)" = "kds-get: s: inotify: Function not implemented: looking for new records every 100 ms" ]
	# a consumer follows the same way, and checkpoints what it printed
	strace -f -o /dev/null -e trace=inotify_init1 -e inject=inotify_init1:error=EMFILE \
	    kds-get -c a -F --idle-timeout 2s s >out 2>err &
	pid=$!
	sleep 0.4
	echo "later -c" | kds-put -k k s
	wait "$pid"
	[ "$(cat err)" = "kds-get: s: inotify resources exhausted: looking for new records every 100 ms" ]
	grep -qx "later -c" out
	run -0 --separate-stderr kds-get -c a s
	[ -z "$output" ]
}

# Any other error from inotify or the wait is one: exit 1 at once, one
# line with the call and what it watches; never a silent wait.
@test "inotify or poll failing otherwise: exit 1, one line naming the call and what it watches" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -n 2
	lines 2 r | kds-put s
	run -1 --separate-stderr strace -f -o /dev/null -e trace=inotify_init1 \
	    -e inject=inotify_init1:error=EINVAL kds-get -F --idle-timeout 5s s
	stderr_is "kds-get: s: inotify: Invalid argument"
	run -1 --separate-stderr strace -f -o /dev/null -e trace=inotify_add_watch \
	    -e inject=inotify_add_watch:error=EACCES:when=1 kds-get -F --idle-timeout 5s s
	stderr_is "kds-get: s: watch: Permission denied"
	run -1 --separate-stderr strace -f -o /dev/null -e trace=inotify_add_watch \
	    -e inject=inotify_add_watch:error=EACCES:when=2 kds-get -F --idle-timeout 5s s
	stderr_is "kds-get: s: shardId-000000000000: watch: Permission denied"
	# the wait itself, once what is there is printed
	run -1 --separate-stderr strace -f -o /dev/null -e trace=ppoll \
	    -e inject=ppoll:error=ENOMEM kds-get -F --idle-timeout 5s s
	stderr_is "kds-get: s: poll: Cannot allocate memory"
	[ "$(sort <<<"$output")" = "$(lines 2 r)" ]
}

@test "-F -s: only the shards named" {
	mkstream s -n 2
	kds-get -F -s 1 --format '%p %s\n' s >out &
	pid=$!
	watching $pid
	lines 6 r | kds-put s		# round robin: r2 r4 r6 to shard 1
	wait_for out 3
	sleep 0.2
	kill $pid
	wait $pid || true
	[ "$(cat out)" = "$(printf 'shardId-000000000001 r%d\n' 2 4 6)" ]
}

@test "-F carries on past a split, parent first, without a restart" {
	have_xxhash || skip "no libxxhash for the split stand-in"
	mkstream s
	lines 3 p | kds-put s
	kds-get -F --format '%p %s\n' s >out 2>err &
	pid=$!
	wait_for out 3
	watching $pid
	python3 "$SPLIT" s 0 >children
	[ "$(cat children)" = $'shardId-000000000001\nshardId-000000000002' ]
	lines 4 c | kds-put s
	wait_for out 7
	kill $pid
	wait $pid || true
	[ ! -s err ]
	head -n 3 out | grep -c '^shardId-000000000000 p' | grep -qx 3
	# the children's records, all of them, after the parent's
	[ "$(tail -n 4 out | grep -c '^shardId-00000000000[12] c')" -eq 4 ]
	[ "$(tail -n 4 out | cut -d' ' -f2 | sort)" = "$(lines 4 c)" ]
}

@test "-F -s PARENT follows into its children, and a merge waits for both parents" {
	have_xxhash || skip "no libxxhash for the split stand-in"
	mkstream s -n 2
	kds-get -F -s 0 --format '%p %s\n' s >out 2>err &
	pid=$!
	watching $pid
	python3 "$SPLIT" s 0 >/dev/null	# children 2 and 3 of 0
	lines 4 a | kds-put s		# round robin over 1, 2, 3 (hash order 2 3 1)
	wait_for out 3
	python3 "$SPLIT" --merge s 2 3 >/dev/null	# child 4 of 2 and 3
	lines 2 b | kds-put s
	wait_for out 4
	sleep 0.3
	kill $pid
	wait $pid || true
	[ ! -s err ]
	# never shard 1's records: it is not a descendant of shard 0
	! grep -q '^shardId-000000000001 ' out
	grep -q '^shardId-000000000004 b' out
	# shard 4's records after every record of 2 and 3
	last23=$(grep -n '^shardId-00000000000[23] ' out | tail -n 1 | cut -d: -f1)
	first4=$(grep -n '^shardId-000000000004 ' out | head -n 1 | cut -d: -f1)
	[ "$last23" -lt "$first4" ]
}
