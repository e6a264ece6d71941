#!/usr/bin/env bats
# 50-expire: kds-expire removes the segments the retention has passed, in
# every shard, changes the retention, takes the stream's lock, and is quiet
# for cron; readers never see an expired record, before or after it runs.
# Arrival times come from KDS_NOW: records are put "hours ago".

load helper

H=3600

setup() {
	kds_setup
	export CREATE_NOW=$T
}

# A failed test must not leave its background processes behind: bats
# would wait for them.  bg CMD... runs CMD in the background and notes it.
teardown() {
	touch "$BATS_TEST_TMPDIR/w/release" 2>/dev/null
	[ -s "$BATS_TEST_TMPDIR/pids" ] && xargs -r kill -9 <"$BATS_TEST_TMPDIR/pids" 2>/dev/null
	return 0
}

# at SECONDS CMD...: CMD with the clock at T + SECONDS.
at() {
	local t=$1
	shift
	KDS_NOW=$((T + t)) "$@"
}

# hourly STREAM HOURS N [kds-put options]: N records "h<H>-<i>" at T + h
# hours + 10 s, for h in 0 .. HOURS-1.
hourly() {
	local s=$1 hours=$2 n=$3 h
	shift 3
	for ((h = 0; h < hours; h++)); do
		seq -f "h$h-%g" 1 "$n" | at $((h * H + 10)) kds-put "$@" "$s" || return 1
	done
}

# state STREAM: every file of the stream with its checksum, to compare.
state() {
	(cd "$1" && find . -type f | sort | xargs md5sum)
}

@test "--help names every option; --version" {
	run -0 --separate-stderr kds-expire --help
	[ -z "$stderr" ]
	[[ ${lines[0]} == "usage: kds-expire "* ]]
	for o in -a --archive -r --retention -n --dry-run -v --verbose --no-wait --help --version; do
		[[ $output == *"$o"* ]] || { echo "no $o in help" >&2; return 1; }
	done
	run -0 --separate-stderr kds-expire --version
	output_is "kds-expire (kds) 0.1.0"
	for o in --help --version; do
		run -1 --separate-stderr bash -c "kds-expire $o >/dev/full"
		stderr_is "kds-expire: stdout: No space left on device"
	done
}

@test "no stream operand, an unknown option, an empty operand: usage, exit 2" {
	run -2 --separate-stderr kds-expire
	[[ ${stderr_lines[0]} == "usage: kds-expire "* ]]
	run -2 --separate-stderr kds-expire --bogus s
	[ "${stderr_lines[0]}" = "kds-expire: unrecognized option '--bogus'" ]
	has_usage kds-expire
	run -2 --separate-stderr kds-expire -r
	[ "${stderr_lines[0]}" = "kds-expire: option requires an argument -- 'r'" ]
	run -2 --separate-stderr kds-expire ''
	has_usage kds-expire
	[ -z "$(ls -A)" ]
}

@test "bad durations: exit 2, one line, the stream untouched" {
	mkstream s -r 1h
	hourly s 2 10
	before=$(state s)
	for v in 0s 8761h 366d 48 abc -1h 1.5h '' 1w ' 1h'; do
		run -2 --separate-stderr at $((5 * H)) kds-expire -r "$v" s
		stderr_is "kds-expire: bad retention '$v': a number and s, m, h or d, from 1s to 8760h"
		[ -z "$output" ]
	done
	[ "$(state s)" = "$before" ]
}

@test "bad streams: exit 1, one line; the good ones are still expired" {
	mkstream s -r 1h
	hourly s 3 10
	mkdir plain
	run -1 --separate-stderr kds-expire nosuch
	stderr_is "kds-expire: nosuch: No such file or directory"
	run -1 --separate-stderr kds-expire plain
	stderr_is "kds-expire: plain: not a stream (no meta file)"
	run -1 --separate-stderr at $((3 * H)) kds-expire nosuch s plain
	[ "${stderr_lines[0]}" = "kds-expire: nosuch: No such file or directory" ]
	[ "${stderr_lines[1]}" = "kds-expire: plain: not a stream (no meta file)" ]
	[ "${#stderr_lines[@]}" -eq 2 ]
	[ -z "$output" ]
	# s was expired all the same: the hour-0 and hour-1 records are gone
	[ "$(python3 "$DECODE" s | wc -l)" -eq 10 ]
	[ -z "$(ls -A plain)" ]
	[ ! -e nosuch ]
}

@test "a bad archive directory is refused before anything is done" {
	mkstream s -r 1h
	hourly s 3 10
	before=$(state s)
	run -1 --separate-stderr at $((3 * H)) kds-expire -a nosuch s
	stderr_is "kds-expire: nosuch: No such file or directory"
	touch file
	run -1 --separate-stderr at $((3 * H)) kds-expire -a file s
	stderr_is "kds-expire: file: Not a directory"
	[ "$(state s)" = "$before" ]
}

# The first removal failing (an index goes before its segment), then the
# sync of the shard's directory after the removals: exit 1, the file or
# directory and the call named; readers see the same window throughout,
# and a run without the fault finishes the job.
@test "an I/O error removing a file or syncing the shard: exit 1, file and call named" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s -r 1h
	hourly s 3 10
	want=$(at $((3 * H)) kds-get $E s)
	run -1 --separate-stderr at $((3 * H)) strace -f -o /dev/null -e trace=unlinkat \
	    -e inject=unlinkat:error=EIO:when=1 kds-expire s
	stderr_is "kds-expire: s: shardId-000000000000/$(seq_of 0 1).idx: unlink: Input/output error"
	[ "$(at $((3 * H)) kds-get $E s)" = "$want" ]
	run -1 --separate-stderr at $((3 * H)) strace -f -o /dev/null -e trace=fsync \
	    -e inject=fsync:error=EIO:when=1 kds-expire s
	stderr_is "kds-expire: s: shardId-000000000000: fsync: Input/output error"
	[ "$(at $((3 * H)) kds-get $E s)" = "$want" ]
	run -0 --separate-stderr at $((3 * H)) kds-expire s
	[ "$(python3 "$DECODE" s | wc -l)" -eq 10 ]
}

@test "nothing to do: silent, exit 0, nothing changed; -v says so" {
	mkstream s -r 1h
	hourly s 1 100
	before=$(state s)
	run -0 --separate-stderr at 1800 kds-expire s
	[ -z "$output" ]
	[ -z "$stderr" ]
	run -0 --separate-stderr at 1800 kds-expire -v s
	output_is "s: nothing has expired"
	[ -z "$stderr" ]
	# an empty stream too
	mkstream e
	run -0 --separate-stderr kds-expire e
	[ -z "$output" ]
	[ -z "$stderr" ]
	[ "$(state s)" = "$before" ]
}

@test "readers never return an expired record, before kds-expire runs" {
	mkstream s -r 1h -n 2
	hourly s 3 50
	# at 2h30 the floor is 1h30: only hour 2 is retained
	run -0 --separate-stderr at $((2 * H + 1800)) kds-get $E s
	[ "${#lines[@]}" -eq 50 ]
	for l in "${lines[@]}"; do [[ $l == h2-* ]]; done
	# TRIM_HORIZON starts at the oldest record inside the window, even in a
	# segment that also holds older ones
	at $((2 * H + 1800)) kds-get $E --format '%T %s\n' s >before
	[ "$(head -n 1 before | cut -d' ' -f1)" = $(((T + 2 * H + 10) * 1000)) ]
	# AT_TIMESTAMP older than the window starts at the window
	run -0 at $((2 * H + 1800)) kds-get $E --timestamp $T s
	[ "${#lines[@]}" -eq 50 ]
	# the same after kds-expire, which removed the rest
	at $((2 * H + 1800)) kds-expire s
	at $((2 * H + 1800)) kds-get $E --format '%T %s\n' s >after
	same before after
	# and the records before the floor are on disk until kds-expire runs
	[ "$(python3 "$DECODE" s | wc -l)" -lt 150 ]
}

@test "every segment whose newest record is older than the retention goes, in every shard" {
	mkstream s -r 1h -n 3 --segment-bytes 4096
	hourly s 4 300
	at 0 python3 "$DECODE" s >all.jsonl
	now=$((3 * H + 1800))
	floor=$(((T + now - H) * 1000))
	# what should stay, computed independently: per shard, every segment
	# from the first whose newest record is at or after the floor
	python3 - "$floor" all.jsonl >want <<'EOF'
import json, sys
floor = int(sys.argv[1])
newest = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    k = (r["shard"], r["segment"])
    newest[k] = max(newest.get(k, 0), r["arrival"])
keep = {}
for (shard, seg), t in sorted(newest.items(), key=lambda kv: (kv[0][0], len(kv[0][1]), kv[0][1])):
    if t >= floor or shard in keep:
        keep.setdefault(shard, []).append(seg)
for shard in sorted(keep):
    for seg in keep[shard]:
        print("shardId-%012d/%s" % (shard, seg))
EOF
	[ "$(wc -l <want)" -lt "$(ls s/shardId-*/*.seg | wc -l)" ]
	run -0 --separate-stderr at $now kds-expire s
	[ -z "$output" ]
	[ -z "$stderr" ]
	(cd s && ls shardId-*/*.seg) | sort >got
	sort want | same - got
	# no index left without its segment
	for i in s/shardId-*/*.idx; do [ -e "${i%.idx}.seg" ]; done
	# the stream is still well formed, by the independent decoder
	python3 "$DECODE" s >/dev/null
	# and reads the same
	at $now kds-get $E s | wc -l >n
	[ "$(cat n)" -eq 300 ]
}

@test "-v: one line per segment removed; -n: the same lines, nothing done" {
	mkstream s -r 1h --segment-bytes 4096
	hourly s 3 100
	before=$(state s)
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -n s
	[ -z "$stderr" ]
	dry=("${lines[@]}")
	[ "${#dry[@]}" -ge 2 ]
	[ "${dry[0]}" = "s: would remove shardId-000000000000/100000000000000000001.seg (100 records)" ]
	[ "$(state s)" = "$before" ]
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -v s
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq "${#dry[@]}" ]
	for ((k = 0; k < ${#lines[@]}; k++)); do
		[ "${lines[k]}" = "${dry[k]/would remove/removed}" ]
	done
	# the records counted in those lines are exactly the ones gone
	gone=$(printf '%s\n' "${lines[@]}" | sed 's/.*(\([0-9]*\) records*)/\1/' | paste -sd+ | bc)
	[ "$gone" -eq $((300 - $(python3 "$DECODE" s | wc -l))) ]
	[ "$gone" -ge 100 ]
}

@test "an idle shard loses every record; sequence numbers go on after it" {
	mkstream s -r 1h -n 2
	hourly s 1 10 -p >acks
	[ "$(grep shardId-000000000000 acks | tail -n 1 | cut -d' ' -f2)" = "$(seq_of 0 5)" ]
	run -0 --separate-stderr at $((2 * H)) kds-expire -v s
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]}" = "s: removed shardId-000000000000/100000000000000000001.seg (5 records)" ]
	[ "${lines[1]}" = "s: removed shardId-000000000001/200000000000000000001.seg (5 records)" ]
	# each shard holds one empty segment, named after the next number
	[ "$(cd s/shardId-000000000000 && ls *.seg)" = "$(seq_of 0 6).seg" ]
	[ "$(filesize "$(last_seg s 0)")" -eq 48 ]
	run -0 at $((2 * H)) kds-get $E s
	[ -z "$output" ]
	python3 "$DECODE" s >/dev/null
	# a producer goes on from there
	seq 4 | at $((2 * H + 5)) kds-put -p -k x s >acks2
	[[ $(head -n 1 acks2 | cut -d' ' -f2) == 100000000000000000006 ||
	    $(head -n 1 acks2 | cut -d' ' -f2) == 200000000000000000006 ]]
	run -0 at $((2 * H + 5)) kds-get $E s
	[ "${lines[*]}" = "1 2 3 4" ]
	python3 "$DECODE" s >/dev/null
	# and a second run finds nothing: the new segment holds new records
	run -0 --separate-stderr at $((2 * H + 5)) kds-expire -v s
	output_is "s: nothing has expired"
}

# close_shard STREAM N C: close shard N at its last record and make shard C
# its child over the same hash keys, as a split into one would; the child's
# directory is an empty shard C of a scratch stream made at T.
close_shard() {
	local s=$1 n=$2 c=$3
	KDS_NOW=$T kds-create -n $((c + 1)) scratch.$$ || return 1
	cp -a "$(shard_dir scratch.$$ "$c")" "$s/" || return 1
	rm -rf scratch.$$
	python3 - "$s" "$n" "$c" <<'EOF'
import ctypes, struct, sys
stream, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
raw = open("%s/shardId-%012d/tail" % (stream, n), "rb").read()
last = struct.unpack_from("<Q", raw, 24)[0]
out = []
for l in open(stream + "/meta").read().splitlines()[:-1]:
    p = l.split(" ")
    if p[0] == "next-shard":
        l = "next-shard %d" % (c + 1)
    if p[0] == "shard" and p[1] == "shardId-%012d" % n:
        child = ["shard", "shardId-%012d" % c, "open", p[1], "-", p[5], p[6],
                 "%d%020d" % (c + 1, 1), "-"]
        p[2] = "closed"
        p[8] = "%d%020d" % (n + 1, last)
        l = " ".join(p)
    out.append(l)
out.append(" ".join(child))
body = ("\n".join(out) + "\n").encode()
open(stream + "/meta", "wb").write(body + b"checksum %016x\n" % f(body, len(body), 0))
EOF
}

@test "a closed shard whose records have all expired leaves the shard table" {
	have_xxhash || skip "no libxxhash.so.0"
	mkstream s -r 1h -n 2
	hourly s 1 10
	close_shard s 1 2
	seq 4 | at $((H + 10)) kds-put s
	# at 1h30 the shard holds a record inside the window: it stays
	run -0 --separate-stderr at 1800 kds-expire -v s
	output_is "s: nothing has expired"
	grep -q '^shard shardId-000000000001 closed' s/meta
	run -0 --separate-stderr at $((H + 1800)) kds-expire -v s
	[ -z "$stderr" ]
	# (shard 0's newer records went to a new segment: --segment-age 1h)
	[ "${lines[0]}" = "s: removed shardId-000000000000/100000000000000000001.seg (5 records)" ]
	[ "${lines[1]}" = "s: removed shardId-000000000001/200000000000000000001.seg (5 records)" ]
	[ "${lines[2]}" = "s: removed the closed shard shardId-000000000001" ]
	[ "${#lines[@]}" -eq 3 ]
	! grep -q '^shard shardId-000000000001' s/meta
	# its child still names it as its parent, as on Kinesis
	grep -q '^shard shardId-000000000002 open shardId-000000000001 ' s/meta
	[ ! -e s/shardId-000000000001 ]
	python3 "$DECODE" s >/dev/null
	run -0 at $((H + 1800)) kds-get $E s
	[ "${#lines[@]}" -eq 4 ]
	run -1 --separate-stderr at $((H + 1800)) kds-get $E -s 1 s
	stderr_is "kds-get: s: shardId-000000000001: no such shard"
}

@test "a closed shard without records goes once its last segment is older than the retention" {
	have_xxhash || skip "no libxxhash.so.0"
	mkstream s -r 1h -n 2
	close_shard s 1 2
	run -0 --separate-stderr at 1800 kds-expire -v s
	output_is "s: nothing has expired"
	run -0 --separate-stderr at $((H + 1)) kds-expire -v s
	output_is "s: removed the closed shard shardId-000000000001"
	[ ! -e s/shardId-000000000001 ]
}

@test "a shard directory left behind by a cut-short removal goes on the next run" {
	have_xxhash || skip "no libxxhash.so.0"
	mkstream s -r 1h -n 2
	hourly s 1 10
	close_shard s 1 2
	cp -a s/shardId-000000000001 saved
	at $((2 * H)) kds-expire s
	# as if the run had died after meta was replaced
	cp -a saved s/shardId-000000000001
	run -0 --separate-stderr at $((2 * H)) kds-expire -n s
	output_is "s: would remove the leftover directory shardId-000000000001"
	[ -d s/shardId-000000000001 ]
	run -0 --separate-stderr at $((2 * H)) kds-expire -v s
	output_is "s: removed the leftover directory shardId-000000000001"
	[ ! -e s/shardId-000000000001 ]
	# a directory numbered at or above next-shard is a reshard's, not ours
	cp -a saved s/shardId-000000000003
	run -0 --separate-stderr at $((2 * H)) kds-expire s
	[ -d s/shardId-000000000003 ]
}

@test "-r lowers the retention, then enforces it; -n changes nothing" {
	mkstream s -r 3h --segment-bytes 4096
	hourly s 3 100
	before=$(state s)
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -n -r 1h s
	[ "${lines[0]}" = "s: would lower the retention from 3h to 1h" ]
	[ "${lines[1]}" = "s: would remove shardId-000000000000/100000000000000000001.seg (100 records)" ]
	[ "$(state s)" = "$before" ]
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -v -r 1h s
	[ "${lines[0]}" = "s: lowered the retention from 3h to 1h" ]
	grep -qx 'retention 3600' s/meta
	python3 "$DECODE" --meta s >/dev/null
	run -0 at $((2 * H + 60)) kds-get $E s
	[ "${#lines[@]}" -eq 100 ]
	# the same again: nothing to do
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -r 60m s
	[ -z "$output" ]
	[ -z "$stderr" ]
}

@test "-r raises the retention; records already expired do not come back" {
	mkstream s -r 1h --segment-bytes 4096
	hourly s 3 100
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -v -r 7d s
	[ "${lines[-1]}" = "s: raised the retention from 1h to 7d" ]
	# the old retention was enforced first
	[ "${lines[0]}" = "s: removed shardId-000000000000/100000000000000000001.seg (100 records)" ]
	grep -qx 'retention 604800' s/meta
	run -0 at $((2 * H + 60)) kds-get $E s
	[[ ${lines[0]} != h0-* ]]
	[ "${#lines[@]}" -lt 300 ]
	[ "${#lines[@]}" -ge 100 ]
	# a week on, everything left goes
	run -0 --separate-stderr at $((9 * 24 * H)) kds-expire s
	run -0 at $((9 * 24 * H)) kds-get $E s
	[ -z "$output" ]
}

# blocked_on_lock FILE: a process waits in flock(2) for FILE (a "->" line
# of /proc/locks, which names the file by device and inode).
blocked_on_lock() {
	grep -q -E -- "-> FLOCK +ADVISORY +WRITE +[0-9]+ [0-9a-f:]+:$(stat -c %i "$1") " /proc/locks
}

@test "a second kds-expire waits for the first, or with --no-wait skips" {
	mkstream s -r 1h
	hourly s 3 10
	before=$(state s)
	flock s/lock -c 'touch held; while [ ! -e release ]; do sleep 0.02; done' &
	holder=$!
	echo "$holder" >>"$BATS_TEST_TMPDIR/pids"
	while [ ! -e held ]; do sleep 0.02; done
	run -0 --separate-stderr at $((3 * H)) kds-expire --no-wait s
	[ -z "$output" ]
	[ -z "$stderr" ]
	run -0 --separate-stderr at $((3 * H)) kds-expire --no-wait -v s
	output_is "s: skipped: locked by another process"
	[ "$(state s)" = "$before" ]
	# without --no-wait it waits, doing nothing meanwhile
	at $((3 * H)) kds-expire -v s >out 2>err &
	pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	for ((k = 0; k < 500; k++)); do
		blocked_on_lock s/lock && break
		sleep 0.02
	done
	blocked_on_lock s/lock
	[ "$(state s)" = "$before" ]
	touch release
	wait "$holder"
	wait "$pid"
	[ ! -s err ]
	[ "$(wc -l <out)" -eq 2 ]
	run -0 at $((3 * H)) kds-get $E s
	[ "${#lines[@]}" -eq 10 ]
	[ "$(ls s/shardId-000000000000/*.seg)" = s/shardId-000000000000/100000000000000000021.seg ]
}

@test "a reader with a segment open keeps reading it while kds-expire removes it" {
	mkstream s -r 1h
	# 4 MiB of records, more than a pipe and kds-get's buffers hold
	seq -f '%08.0f-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' 1 50000 |
	    at 10 kds-put -k k s
	mkfifo pipe
	# the reader blocks on the full pipe, its segment open
	at 20 kds-get $E s >pipe &
	reader=$!
	echo "$reader" >>"$BATS_TEST_TMPDIR/pids"
	exec 7<pipe
	head -c 1 <&7 >first
	run -0 --separate-stderr at $((2 * H)) kds-expire -v s
	[ "${lines[0]}" = "s: removed shardId-000000000000/100000000000000000001.seg (50000 records)" ]
	[ "$(cd s/shardId-000000000000 && ls *.seg)" = "100000000000000050001.seg" ]
	cat <&7 >rest
	exec 7<&-
	wait "$reader"
	cat first rest | cut -d- -f1 >got
	seq -f '%08.0f' 1 50000 | same - got
}

@test "producers and readers run while kds-expire removes segments" {
	mkstream s -r 2s --segment-bytes 4096 -n 2
	# real time: records expire two seconds after they are put
	(for ((k = 1; k <= 40; k++)); do
		seq -f "$k-%g" 1 50 | kds-put -p s || exit 1
		sleep 0.05
	done) >acks 2>put.err &
	producer=$!
	echo "$producer" >>"$BATS_TEST_TMPDIR/pids"
	(while kill -0 "$producer" 2>/dev/null; do
		kds-get $E s >/dev/null || exit 1
	done) 2>get.err &
	reader=$!
	echo "$reader" >>"$BATS_TEST_TMPDIR/pids"
	while kill -0 "$producer" 2>/dev/null; do
		kds-expire s || exit 1
	done 2>expire.err
	wait "$producer"
	wait "$reader"
	[ ! -s put.err ]
	[ ! -s get.err ]
	[ ! -s expire.err ]
	[ "$(wc -l <acks)" -eq 2000 ]
	# each shard's numbers are contiguous, whatever was removed meanwhile
	for sh in 0 1; do
		grep "shardId-00000000000$sh" acks | cut -d' ' -f2 >nums
		[ "$(sort -u nums | wc -l)" -eq "$(wc -l <nums)" ]
		[ $(($(tail -n 1 nums) - $(head -n 1 nums) + 1)) -eq "$(wc -l <nums)" ]
	done
	python3 "$DECODE" s >/dev/null
}

@test "completions: bash offers every option of kds-expire; zsh and fish name them" {
	source "$BATS_TEST_DIRNAME/../completions/kds.bash"
	COMP_WORDS=(kds-expire --)
	COMP_CWORD=1
	_kds kds-expire || true	# compopt fails outside completion
	for o in --archive --retention --dry-run --verbose --no-wait --help --version; do
		[[ " ${COMPREPLY[*]} " == *" $o "* ]] || { echo "bash: no $o" >&2; return 1; }
	done
	mkstream s
	mkdir d
	COMP_WORDS=(kds-expire -a "")
	COMP_CWORD=2
	COMPREPLY=()
	_kds kds-expire || true	# compopt fails outside completion
	[[ " ${COMPREPLY[*]} " == *" d/ "* ]]
	COMP_WORDS=(kds-expire -v "")
	COMPREPLY=()
	_kds kds-expire || true	# compopt fails outside completion
	[[ " ${COMPREPLY[*]} " == *" s "* ]]
	for o in archive retention dry-run verbose no-wait; do
		grep -q -- "--$o" "$BATS_TEST_DIRNAME/../completions/_kds"
		grep -q -- "complete -c kds-expire .*-l $o" "$BATS_TEST_DIRNAME/../completions/kds.fish"
	done
	grep -q -- "--archive" "$BATS_TEST_DIRNAME/../completions/_kds"
	grep -q -- "complete -c kds-get -l archive" "$BATS_TEST_DIRNAME/../completions/kds.fish"
}

# A reader that read meta before kds-expire dropped a closed shard opens
# that shard after its directory has gone: the shard is done, not damage.
@test "a reader opening a closed shard that expire removed meanwhile goes on" {
	command -v strace >/dev/null || skip "no strace"
	have_xxhash || skip "no libxxhash.so.0"
	mkstream s -r 1h -n 2
	hourly s 1 10
	close_shard s 1 2
	seq 4 | at $((H + 10)) kds-put s
	# the reader stops 1 s before it opens shard 1's directory
	at $((H + 1800)) strace -f -o /dev/null -P s/shardId-000000000001 \
	    -e trace=openat -e inject=openat:delay_enter=1000000:when=1 \
	    kds-get s >out 2>err &
	sleep 0.3
	at $((H + 1800)) kds-expire s
	[ ! -e s/shardId-000000000001 ]
	wait $! || { cat err >&2; return 1; }
	grep -v '^strace: ' err >kerr || true
	[ ! -s kerr ]
	[ "$(wc -l <out)" -eq 4 ] || { cat out err >&2; return 1; }
}
