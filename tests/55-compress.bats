#!/usr/bin/env bats
# 55-compress: kds-expire --compress-after turns sealed segments into
# SEQ.zseg (kds-stream(5), COMPRESSED SEGMENTS): every reader reads the
# same bytes as before, seeks stay cheap, a reader running meanwhile reads
# each record once, a crash at any step leaves a stream that reads each
# record once and a rerun finishes, damage is reported and never printed,
# and retention and archives take compressed segments as plain ones.

load helper

H=3600
Z=shardId-000000000000

setup() {
	kds_setup
	export CREATE_NOW=$T
}

teardown() {
	[ -s "$BATS_TEST_TMPDIR/pids" ] && xargs -r kill -9 <"$BATS_TEST_TMPDIR/pids" 2>/dev/null
	return 0
}

# at SECONDS CMD...: CMD with the clock at T + SECONDS.
at() {
	local t=$1
	shift
	KDS_NOW=$((T + t)) "$@"
}

# Under strace, LeakSanitizer cannot run: "$NOLEAK strace".
NOLEAK="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

# clicks N [SEED]: N clickstream-like JSON lines, as a web shop logs them.
clicks() {
	python3 "$TOOLS/kds-clicks.py" "$1" "${2-1}"
}

# state STREAM: every file of the stream with its checksum, to compare.
state() {
	(cd "$1" && find . -type f | sort | xargs md5sum)
}

# zsegs STREAM [N]: the compressed segments of shard N (default 0).
zsegs() {
	find "$(shard_dir "$1" "${2-0}")" -name '*.zseg' | sort
}

# everything STREAM FILE: what every iterator, shard and limit prints,
# into FILE, one section per reading.
everything() {
	local s=$1 f=$2 q q0 q1
	: >"$f"
	read_as() {
		echo "== $*" >>"$f"
		at 3000 kds-get $E --format '%p %o %T %k %s\n' "$@" "$s" >>"$f" 2>&1 ||
		    echo "exit $?" >>"$f"
	}
	read_as
	read_as -i TRIM_HORIZON -n 7
	read_as -i LATEST
	read_as -s 0
	read_as -s 1 -n 1000
	for q in 1 2 527 528 529 1500 4000 4999 5000; do
		# seq_of 0 and 1 without their subshells: this runs three times
		printf -v q0 '1%020d' "$q"
		printf -v q1 '2%020d' "$q"
		read_as -i AT_SEQUENCE_NUMBER --sequence "$q0"
		read_as -i AFTER_SEQUENCE_NUMBER --sequence "$q0" -n 3
		read_as -i AT_SEQUENCE_NUMBER --sequence "$q1" -n 5
	done
	for q in 0 1 3 5 7 9 12; do
		read_as -i AT_TIMESTAMP --timestamp $((T + q)) -n 20
		read_as -i AT_TIMESTAMP --timestamp $((T + q)) -s 1
	done
}

@test "round trip: every iterator, -s and -n read the same bytes after compression" {
	mkstream s -n 2 --segment-bytes 512K
	# ten batches a second apart, so that times fall inside segments
	clicks 10000 >in
	for k in 0 1 2 3 4 5 6 7 8 9; do
		sed -n "$((k * 1000 + 1)),$((k * 1000 + 1000))p" in |
		    at $((k + 1)) kds-put -d '"' -f 8 s
	done
	[ "$(segs s 0 | wc -l)" -ge 3 ]
	[ "$(segs s 1 | wc -l)" -ge 3 ]
	everything s before
	cp -a s orig
	run -0 --separate-stderr at 3000 kds-expire -v --compress-after 0s s
	[ -z "$stderr" ]
	[ "${lines[0]}" = "s: changed compress-after from never to 0s" ]
	grep -qx 'compress-after 0' s/meta
	# every sealed segment, none of the active ones
	for sh in 0 1; do
		[ "$(zsegs s $sh | wc -l)" -eq $(($(segs orig $sh | wc -l) - 1)) ]
		[ "$(segs s $sh | wc -l)" -eq 1 ]
		[ "$(basename "$(last_seg s $sh)")" = "$(basename "$(last_seg orig $sh)")" ]
	done
	for z in $(zsegs s 0) $(zsegs s 1); do
		[ ! -e "${z%.zseg}.seg" ]
		[ ! -e "${z%.zseg}.idx" ]
		[ -e "${z%.zseg}.zidx" ]
	done
	everything s after
	same before after
	# the independent decoder agrees, and each SEQ.zseg is its SEQ.seg
	python3 "$DECODE" s >/dev/null
	for z in $(zsegs s 0) $(zsegs s 1); do
		seg=orig/${z#s/}
		python3 "$DECODE" --inflate "$z" | cmp - "${seg%.zseg}.seg"
	done
	# and without the indexes, the answers are the same, only slower
	rm s/shardId-*/*.zidx
	everything s noindex
	same before noindex
}

@test "clickstream JSON lines take at most 25% of their raw size, compressed" {
	mkstream s --segment-bytes 1M
	clicks 40000 | at 10 kds-put -k k s
	# (one stat for all the sizes, and bash adds them up)
	sizes=$(stat -c %s $(segs s 0 | head -n -1))
	raw=0
	for f in $sizes; do raw=$((raw + f)); done
	at_rest=$(at 3000 kds-describe -j s | python3 -c 'import json,sys; print(json.load(sys.stdin)["StreamDescription"]["Bytes"])')
	at 3000 kds-expire --compress-after 0s s
	sizes=$(stat -c %s s/$Z/*.zseg s/$Z/*.zidx)
	z=0
	for f in $sizes; do z=$((z + f)); done
	echo "# $raw bytes of segments to $z compressed: $((z * 1000 / raw))/1000" >&3
	[ "$raw" -gt 8000000 ]
	[ $((z * 4)) -le "$raw" ]
	# kds-describe counts the bytes on disk, and a segment once, and
	# they are less than a quarter of what they were
	run -0 at 3000 kds-describe -j s
	python3 - "$output" "$(cat s/$Z/* | wc -c)" "$(segs s 0 | wc -l)" "$(zsegs s | wc -l)" "$at_rest" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])["StreamDescription"]
assert d["Bytes"] == int(sys.argv[2]), (d["Bytes"], sys.argv[2])
assert d["Shards"][0]["Segments"] == int(sys.argv[3]) + int(sys.argv[4])
assert d["Records"] == 40000
assert d["Bytes"] < int(sys.argv[5]) // 4, (d["Bytes"], sys.argv[5])
EOF
}

@test "--compress-after: a bad duration is a usage error, exit 2, nothing changed" {
	mkstream s --segment-bytes 4096
	seq 300 | kds-put s
	before=$(state s)
	for v in 8761h 366d abc -1h 1.5h '' 1w 48 ' 1h' 1H; do
		run -2 --separate-stderr kds-expire --compress-after "$v" s
		stderr_is "kds-expire: bad compress-after '$v': a number and s, m, h or d, from 0s to 8760h"
		[ -z "$output" ]
		run -2 --separate-stderr kds-create --compress-after "$v" new
		stderr_is "kds-create: bad compress-after '$v': a number and s, m, h or d, from 0s to 8760h"
		[ ! -e new ]
	done
	run -2 --separate-stderr kds-expire --compress-after
	[ "${stderr_lines[0]}" = "kds-expire: option '--compress-after' requires an argument" ]
	[ "$(state s)" = "$before" ]
	# the limits themselves are taken
	mkstream a --compress-after 0s
	grep -qx 'compress-after 0' a/meta
	mkstream b --compress-after 8760h
	grep -qx 'compress-after 31536000' b/meta
	python3 "$DECODE" --meta b >/dev/null
}

@test "-n says what would be done and does nothing; -v says what is done" {
	mkstream s --segment-bytes 4096
	for h in 0 1 2; do seq -f "h$h-%g" 1 200 | at $((h * H + 10)) kds-put -k k s; done
	before=$(state s)
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -n --compress-after 1h s
	[ -z "$stderr" ]
	dry=("${lines[@]}")
	[ "${dry[0]}" = "s: would change compress-after from never to 1h" ]
	[[ ${dry[1]} =~ ^s:\ would\ compress\ $Z/100000000000000000001\.seg\ \(([0-9]+)\ records,\ ([0-9]+)\ bytes\)$ ]]
	[ "$(state s)" = "$before" ]
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -v --compress-after 1h s
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq "${#dry[@]}" ]
	[ "${lines[0]}" = "s: changed compress-after from never to 1h" ]
	n=0
	for ((k = 1; k < ${#lines[@]}; k++)); do
		[[ ${lines[k]} =~ ^s:\ compressed\ ($Z/[0-9]+\.seg)\ \(([0-9]+)\ records,\ ([0-9]+)\ to\ ([0-9]+)\ bytes\)$ ]]
		seg=${BASH_REMATCH[1]}
		[ "${dry[k]}" = "s: would compress $seg (${BASH_REMATCH[2]} records, ${BASH_REMATCH[3]} bytes)" ]
		[ -e "s/${seg%.seg}.zseg" ]
		[ ! -e "s/$seg" ]
		[ ! -e "s/${seg%.seg}.idx" ]
		[ "$(filesize "s/${seg%.seg}.zseg")" -eq "${BASH_REMATCH[4]}" ]
		n=$((n + BASH_REMATCH[2]))
	done
	# exactly the records of hours 0 and 1, whose newest is over an hour old
	[ "$n" -ge 200 ]
	[ "$n" -le 400 ]
	run -0 --separate-stderr at $((2 * H + 60)) kds-get $E --format '%T %s\n' s
	[ "${#lines[@]}" -eq 600 ]
	# the same again: nothing to do, and the setting is kept without the option
	run -0 --separate-stderr at $((2 * H + 60)) kds-expire -v s
	output_is "s: nothing has expired"
	grep -qx 'compress-after 3600' s/meta
}

@test "compress-after from kds-create: only sealed segments past it, never the active one" {
	mkstream s --segment-bytes 4096 --compress-after 1h
	grep -qx 'compress-after 3600' s/meta
	for h in 0 1 2 3; do seq -f "h$h-%g" 1 100 | at $((h * H + 10)) kds-put -k k s; done
	at 0 python3 "$DECODE" s >all.jsonl
	now=$((3 * H + 60))
	run -0 --separate-stderr at $now kds-expire -v s
	# what should be compressed, computed independently: every segment but
	# the last whose newest record arrived before now - 1h
	python3 - $(((T + now - H) * 1000)) all.jsonl >want <<'EOF'
import json, sys
floor = int(sys.argv[1])
newest = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    newest[r["segment"]] = max(newest.get(r["segment"], 0), r["arrival"])
segs = sorted(newest, key=lambda s: (len(s), s))
for s in segs[:-1]:
    if newest[s] < floor:
        print(s[:-4] + ".zseg")
EOF
	[ -s want ]
	(cd s/$Z && ls *.zseg) | sort | same <(sort want) -
	[ "$(grep -c compressed <<<"$output")" -eq "$(wc -l <want)" ]
	# the active segment stays plain, even past compress-after
	active=$(last_seg s 0)
	run -0 --separate-stderr at $((9 * H)) kds-expire -v s
	[ "$(segs s 0)" = "$active" ]
	[ "$(zsegs s | wc -l)" -ge 3 ]
	# a producer goes on after compressed segments
	seq -f 'more-%g' 1 5 | at $((9 * H)) kds-put -k k s
	at $((9 * H)) kds-get $E s | tail -n 6 >got
	printf 'h3-100\nmore-1\nmore-2\nmore-3\nmore-4\nmore-5\n' | same - got
	python3 "$DECODE" s >/dev/null
}

@test "a stream without compress-after: kds-expire compresses nothing, meta unchanged" {
	mkstream s --segment-bytes 4096
	for h in 0 1; do seq 300 | at $((h * H + 10)) kds-put -k k s; done
	cp s/meta meta.before
	run -0 --separate-stderr at $((5 * H)) kds-expire -v s
	output_is "s: nothing has expired"
	[ -z "$(zsegs s)" ]
	cmp meta.before s/meta
}

@test "a reader blocked with SEQ.seg open reads on in it; the next segments it opens compressed" {
	mkstream s --segment-bytes 1M
	# 4 MiB of records, more than a pipe and kds-get's buffers hold
	seq -f '%08.0f-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' 1 50000 |
	    at 10 kds-put -k k s
	[ "$(segs s 0 | wc -l)" -ge 4 ]
	mkfifo pipe
	at 20 kds-get $E s >pipe &
	reader=$!
	echo "$reader" >>"$BATS_TEST_TMPDIR/pids"
	exec 7<pipe
	head -c 1 <&7 >first
	run -0 --separate-stderr at 30 kds-expire -v --compress-after 0s s
	[[ ${lines[1]} == "s: compressed $Z/100000000000000000001.seg ("* ]]
	[ ! -e "s/$Z/100000000000000000001.seg" ]
	cat <&7 >rest
	exec 7<&-
	wait "$reader"
	cat first rest | cut -d- -f1 >got
	seq -f '%08.0f' 1 50000 | same - got
}

@test "a reader that listed SEQ.seg and finds it gone opens SEQ.zseg" {
	command -v strace >/dev/null || skip "no strace"
	mkstream s --segment-bytes 64K
	seq -f 'rec-%06.0f' 1 20000 | at 10 kds-put -k k s
	at 20 kds-get $E s >want
	seg=$(basename "$(segs s 0 | sed -n 2p)")
	# the reader stops 1 s before it opens the second segment
	at 20 $NOLEAK strace -f -o /dev/null -P "$seg" -e trace=openat \
	    -e inject=openat:delay_enter=1000000:when=1 kds-get $E s >out 2>err &
	pid=$!
	echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
	sleep 0.3
	at 30 kds-expire --compress-after 0s s
	[ ! -e "s/$Z/$seg" ]
	[ -e "s/$Z/${seg%.seg}.zseg" ]
	wait "$pid" || { cat err >&2; return 1; }
	grep -v '^strace: ' err >kerr || true
	[ ! -s kerr ]
	same want out
}

@test "kds-get -F while segments are compressed and written: each record exactly once" {
	mkstream s -n 2 --segment-bytes 16K --compress-after 0s
	total=6000
	kds-get -F -n $total --format '%p %o %s\n' s >out 2>get.err &
	reader=$!
	echo "$reader" >>"$BATS_TEST_TMPDIR/pids"
	(for ((k = 1; k <= 30; k++)); do
		seq -f "$k-%g" 1 200 | kds-put -p -d - -f 2 s || exit 1
		sleep 0.02
	done) >acks 2>put.err &
	producer=$!
	echo "$producer" >>"$BATS_TEST_TMPDIR/pids"
	while kill -0 "$producer" 2>/dev/null; do
		kds-expire s || exit 1
	done 2>expire.err
	wait "$producer"
	kds-expire s
	wait "$reader"
	[ ! -s put.err ]
	[ ! -s get.err ]
	[ ! -s expire.err ]
	[ -n "$(zsegs s 0)" ]
	[ -n "$(zsegs s 1)" ]
	[ "$(wc -l <out)" -eq $total ]
	# every acknowledged record once, each shard in order
	cut -d' ' -f1,2 out | sort >got
	sort acks | same - got
	for sh in 0 1; do
		grep "^shardId-00000000000$sh " out | cut -d' ' -f2 >nums
		sort -n nums | cmp - nums
	done
	at 0 kds-get $E --format '%p %o %s\n' s | sort | same <(sort out) -
}

# crash_points CALLS [EVERY]: kill kds-expire --compress-after at its 1st,
# (1 + EVERY)th, ... call of CALLS; after each crash every record reads
# once, the decoder agrees, and a rerun finishes the job.  make check-full
# visits each of those points, make check every STEP-th of them from the
# (1 + PHASE)th (PHASE modulo their number: there may be fewer than STEP).
crash_points() {
	local calls=$1 every=${2:-1} total m j jlast n i=0 out rc f key tmp sh
	local -A count
	# a run that is not killed completes, and counts the points
	rm -rf s && cp -a tmpl s
	KDS_NOW=$((T + 60)) strace -f -o trace -e trace="$calls" \
	    kds-expire --compress-after 0s s >/dev/null 2>&1 ||
	    { echo "$calls: exit $? without a crash" >&2; return 1; }
	total=$(calls_made trace)
	((total >= 1 && total <= 200)) || { echo "$calls: $total calls" >&2; return 1; }
	m=$(((total - 1) / every + 1))
	jlast=$((PHASE % m + (m - 1 - PHASE % m) / STEP * STEP))
	echo "# $calls: $total calls, crash points $((1 + every * (PHASE % m))) to $((1 + every * jlast)), every $((every * STEP))" >&3
	for ((j = PHASE % m; j < m; j += STEP, i++)); do
		n=$((1 + every * j))
		rm -rf s && cp -a tmpl s
		rc=0
		KDS_NOW=$((T + 60)) strace -f -o /dev/null -e trace="$calls" \
		    -e inject="$calls":signal=KILL:when=$n \
		    kds-expire --compress-after 0s s >/dev/null 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "$calls $n: exit $rc" >&2; return 1; }
		out=$(at 60 kds-get $E --format '%p %o %s\n' s 2>&1) ||
		    { echo "$calls $n: reader: $out" >&2; return 1; }
		[ "$out" = "$wanted" ] ||
		    { same want <(echo "$out"); echo "$calls $n: records differ" >&2; return 1; }
		# kds-get checked every checksum; the independent decoder, the
		# most costly check, sees every 3rd crash's stream and the last
		if ((i % 3 == 0 || j == jlast)); then
			python3 "$DECODE" s >/dev/null || { echo "$calls $n: decoder" >&2; return 1; }
		fi
		out=$(at 60 kds-expire --compress-after 0s s 2>&1) ||
		    { echo "$calls $n: rerun: $out" >&2; return 1; }
		out=$(at 60 kds-get $E --format '%p %o %s\n' s) ||
		    { echo "$calls $n: reader after the rerun" >&2; return 1; }
		[ "$out" = "$wanted" ] ||
		    { same want <(echo "$out"); echo "$calls $n: records differ after the rerun" >&2; return 1; }
		# one find for what is left: no .tmp anywhere, and in each shard
		# one .seg (the active one) and a .zidx for each .zseg
		count=()
		tmp=
		for f in $(find s -name '*.tmp' -o -name '*.seg' -o -name '*.zseg' -o -name '*.zidx'); do
			[[ $f == *.tmp ]] && tmp+=" $f"
			key="${f%/*} ${f##*.}"
			count[$key]=$((${count[$key]-0} + 1))
		done
		[ -z "$tmp" ] || { echo "$calls $n: .tmp left:$tmp" >&2; return 1; }
		for sh in 0 1; do
			[ "${count[s/shardId-00000000000$sh seg]-0}" -eq 1 ] ||
			    { echo "$calls $n: not all compressed" >&2; return 1; }
			[ "${count[s/shardId-00000000000$sh zidx]-0}" -eq "${count[s/shardId-00000000000$sh zseg]-0}" ] ||
			    { echo "$calls $n: index left" >&2; return 1; }
		done
		# and a rerun's, every 6th and the last
		if ((i % 6 == 0 || j == jlast)); then
			python3 "$DECODE" s >/dev/null ||
			    { echo "$calls $n: decoder after rerun" >&2; return 1; }
		fi
	done
}

@test "killed at every write, sync, rename and unlink of a compression: each record once, a rerun finishes" {
	command -v strace >/dev/null || skip "no strace"
	no_leak_check
	mkstream tmpl -n 2 --segment-bytes 8K
	clicks 300 | at 10 kds-put -d '"' -f 8 tmpl
	[ "$(segs tmpl 0 | wc -l)" -ge 3 ]
	at 60 kds-get $E --format '%p %o %s\n' tmpl >want
	wanted=$(<want)
	crash_points fsync,fdatasync
	crash_points rename,renameat,renameat2
	crash_points unlink,unlinkat
	crash_points write,writev,pwrite64
	# most opens only read (and the first dozen or so are the loader's):
	# a kill there is a kill between the steps above, so every 7th is enough
	crash_points openat 7
}

@test "SEQ.seg beside SEQ.zseg: read once; the next run finishes, unless they differ" {
	mkstream s --segment-bytes 8K
	clicks 200 | at 10 kds-put -k k s
	first=$(segs s 0 | head -n 1)
	cp "$first" seg.copy
	cp "${first%.seg}.idx" idx.copy
	at 20 kds-expire --compress-after 0s s
	at 20 kds-get $E s >want
	# as if a crash came between the rename and the unlinks
	cp seg.copy "$first"
	cp idx.copy "${first%.seg}.idx"
	run -0 --separate-stderr at 20 kds-get $E s
	same want <(echo "$output")
	python3 "$DECODE" s >/dev/null
	run -0 --separate-stderr at 20 kds-expire -n s
	output_is "s: would finish compressing ${first#s/} ($(frames seg.copy | wc -l) records)"
	[ -e "$first" ]
	run -0 --separate-stderr at 20 kds-expire -v s
	output_is "s: finished compressing ${first#s/} ($(frames seg.copy | wc -l) records)"
	[ ! -e "$first" ]
	[ ! -e "${first%.seg}.idx" ]
	[ -e "${first%.seg}.zseg" ]
	at 20 kds-get $E s | same want -
	# a SEQ.zseg that is not its SEQ.seg: reported, nothing removed
	cp seg.copy "$first"
	read -r off _ < <(frames seg.copy | sed -n 5p)
	python3 "$DECODE" --damage "${first%.seg}.zseg" "$off"
	run -1 --separate-stderr at 20 kds-expire -v s
	z=${first#s/}
	stderr_is "kds-expire: s: ${z%.seg}.zseg: not the compressed form of $z"
	[ -e "$first" ]
	[ -e "${first%.seg}.zseg" ]
}

@test "a damaged segment is not compressed: exit 1, file and offset named, left as it was" {
	mkstream s --segment-bytes 8K
	clicks 200 | at 10 kds-put -k k s
	first=$(segs s 0 | head -n 1)
	read -r off _ < <(frames "$first" | sed -n 7p)
	flip "$first" $((off + 40))
	cp "$first" seg.before
	run -1 --separate-stderr at 20 kds-expire --compress-after 0s s
	stderr_is "kds-expire: s: ${first#s/}: offset $off: bad checksum"
	cmp "$first" seg.before
	[ -z "$(zsegs s)" ]
	[ -z "$(find s -name '*.zidx' -o -name '*.tmp')" ]
}

# An I/O error at a write or sync of a compression (the .zseg.tmp, the
# .zidx, the shard's directory after the rename): exit 1, the file and the
# call named; the stream reads as before, no .tmp is left, and a rerun
# finishes the job.
@test "an I/O error writing or syncing a compression: exit 1, file and call named, nothing lost" {
	command -v strace >/dev/null || skip "no strace"
	mkstream tmpl --segment-bytes 8K
	clicks 100 | at 10 kds-put -k k tmpl
	[ "$(segs tmpl 0 | wc -l)" -ge 3 ]
	at 60 kds-get $E tmpl >want
	f=$Z/$(seq_of 0 1)
	for c in "write ENOSPC $f.zseg.tmp.write" "pwrite64 ENOSPC $f.zseg.tmp.write" \
	    "fsync EIO $f.zseg.tmp.fsync" "write ENOSPC $f.zidx.write" \
	    "fsync EIO $f.zidx.fsync" "fsync EIO $Z.fsync"; do
		read -r call err what <<<"$c"
		file=${what%.*}
		rm -rf s && cp -a tmpl s
		run -1 --separate-stderr at 60 strace -f -o /dev/null -P "$PWD/s/$file" \
		    -e trace="$call" -e inject="$call:error=$err:when=1" \
		    kds-expire --compress-after 0s s
		stderr_is "kds-expire: s: $file: ${what##*.}: $(
		    [ "$err" = EIO ] && echo Input/output error || echo No space left on device)" ||
		    { echo "($c)" >&2; return 1; }
		at 60 kds-get $E s | same want - || { echo "($c)" >&2; return 1; }
		[ -z "$(find s -name '*.tmp')" ] || { echo "($c): .tmp left" >&2; return 1; }
		run -0 --separate-stderr at 60 kds-expire --compress-after 0s s
		[ "$(segs s 0 | wc -l)" -eq 1 ] || { echo "($c): rerun" >&2; return 1; }
		at 60 kds-get $E s | same want - || { echo "($c): after the rerun" >&2; return 1; }
	done
}

# The rename of SEQ.zseg.tmp into place failing otherwise than "File
# exists" says which call failed, as a segment's rename does.
@test "an I/O error renaming a compressed segment into place: exit 1, file and 'rename' named" {
	command -v strace >/dev/null || skip "no strace"
	# the setting made at create: --compress-after would rewrite meta
	mkstream s --segment-bytes 8K --compress-after 0s
	clicks 100 | at 10 kds-put -k k s
	before=$(state s)
	run -1 --separate-stderr at 60 strace -f -o /dev/null -e trace=renameat2 \
	    -e inject=renameat2:error=EIO:when=1 kds-expire s
	stderr_is "kds-expire: s: $Z/$(seq_of 0 1).zseg: rename: Input/output error"
	[ "$(state s)" = "$before" ]
}

@test "leftovers of a cut-short conversion are removed by the next run" {
	mkstream s --segment-bytes 8K --compress-after 0s
	clicks 200 | at 10 kds-put -k k s
	first=$(segs s 0 | head -n 1)
	echo junk >"${first%.seg}.zseg.tmp"
	echo junk >"${first%.seg}.zidx"
	at 20 kds-get $E s >want
	run -0 --separate-stderr at 20 kds-get $E s
	same want <(echo "$output")
	at 20 kds-expire s
	[ ! -e "${first%.seg}.zseg.tmp" ]
	[ -z "$(find s -name '*.tmp')" ]
	python3 "$DECODE" s >/dev/null
	# an index without its segment goes too
	cp "${first%.seg}.zidx" "s/$Z/$(seq_of 0 99999).zidx"
	at 20 kds-expire s
	[ ! -e "s/$Z/$(seq_of 0 99999).zidx" ]
	at 20 kds-get $E s | same want -
}

# The second block of the first compressed segment damaged: kds-get prints
# exactly the records before it, then one line naming the file and the
# block's offset, exit 1.
@test "a damaged compressed block is reported with file and offset, never printed" {
	mkstream pristine --segment-bytes 1M --compress-after 0s
	clicks 12000 | at 10 kds-put -k k pristine
	at 20 kds-expire pristine
	at 20 kds-get $E pristine >all
	name=$Z/100000000000000000001.zseg
	read -r b2 segoff2 _ _ first2 < <(python3 "$DECODE" --blocks "pristine/$name" | sed -n 2p)
	for how in payload header; do
		rm -rf s && cp -a pristine s
		case $how in
		payload) flip "s/$name" $((b2 + 48 + 100)); why="bad block checksum" ;;
		header) flip "s/$name" $((b2 + 26)); why="bad block header" ;;
		esac
		run -1 --separate-stderr at 20 kds-get $E s
		stderr_is "kds-get: s: $name: offset $b2: $why"
		same <(head -n $((first2 - 1)) all) <(printf '%s\n' "${lines[@]}")
		# a seek into the block finds the damage too, and prints nothing
		run -1 --separate-stderr at 20 kds-get $E -i AT_SEQUENCE_NUMBER --sequence "$(seq_of 0 $((first2 + 1)))" s
		stderr_is "kds-get: s: $name: offset $b2: $why"
		[ -z "$output" ]
		run -1 --separate-stderr python3 "$DECODE" s
		[[ $stderr == "kds-decode: s/$name: offset $b2: "* ]]
	done
	# a frame damaged inside a block that checks out: its segment offset
	rm -rf s && cp -a pristine s
	python3 "$DECODE" --inflate "pristine/$name" >seg
	read -r off _ counter < <(frames seg | sed -n "$((first2 + 3))p")
	[ "$counter" -eq $((first2 + 3)) ]
	python3 "$DECODE" --damage "s/$name" "$off"
	run -1 --separate-stderr at 20 kds-get $E s
	stderr_is "kds-get: s: $name: offset $b2: segment offset $off: bad checksum"
	same <(head -n $((counter - 1)) all) <(printf '%s\n' "${lines[@]}")
	# a damaged header: offset 0
	rm -rf s && cp -a pristine s
	flip "s/$name" 90
	run -1 --separate-stderr at 20 kds-get $E s
	stderr_is "kds-get: s: $name: offset 0: bad compressed segment header"
	[ -z "$output" ]
}

@test "expired compressed segments go, archived as the SEQ.seg they were" {
	command -v bsdtar >/dev/null || skip "no bsdtar"
	mkstream s -r 4h --segment-bytes 4096
	for h in 0 1 2; do seq -f "h$h-%g" 1 300 | at $((h * H + 10)) kds-put -k k s; done
	cp -a s orig
	at $((3 * H)) kds-expire --compress-after 0s s
	[ "$(zsegs s | wc -l)" -eq $(($(segs orig 0 | wc -l) - 1)) ]
	at $((3 * H)) kds-get $E --format '%o %T %s\n' s >before
	mkdir arch
	run -0 --separate-stderr at $((4 * H + 1800)) kds-expire -v -a arch s
	[ -z "$stderr" ]
	[[ ${lines[0]} == "s: archived "*" segments of $Z (300 records) to arch/s/2025/11/28/10/$Z-$(seq_of 0 1)-$(seq_of 0 300).tar.zst" ]]
	[[ ${lines[1]} =~ ^s:\ removed\ $Z/[0-9]+\.zseg\ \([0-9]+\ records\)$ ]]
	for l in "${lines[@]:1}"; do
		p=${l#s: removed }
		p=${p%% *}
		[ ! -e "s/$p" ]
		[ ! -e "s/${p%.zseg}.zidx" ]
	done
	# the archive holds each segment byte for byte as it was before
	a=$(find arch -name '*.tar.zst')
	mkdir x
	bsdtar -xf "$a" -C x
	n=0
	for seg in x/s/$Z/*; do
		[[ $seg == *.seg ]]
		cmp "$seg" "orig/$Z/$(basename "$seg")"
		n=$((n + 1))
	done
	[ "$n" -ge 2 ]
	# and reads back what the stream gave
	{ kds-get --archive --format '%o %T %s\n' "$a"; at $((4 * H + 1800)) kds-get $E --format '%o %T %s\n' s; } >after
	same before after
	python3 "$DECODE" s >/dev/null
	# a closed stream's remaining compressed segments go, in the end
	run -0 --separate-stderr at $((30 * H)) kds-expire -v s
	[ -z "$(zsegs s)" ]
	[ -z "$(find s -name '*.zidx')" ]
}

@test "kds-describe --verify checks compressed segments: every block, frame and index entry" {
	kds-describe --help | grep -q -e --verify || skip "no kds-describe --verify"
	mkstream s -n 2 --segment-bytes 512K --compress-after 0s
	clicks 12000 | at 10 kds-put -d '"' -f 8 s
	at 20 kds-expire s
	[ -n "$(zsegs s 0)" ]
	[ -n "$(zsegs s 1)" ]
	nseg=$(find s -name '*.seg' -o -name '*.zseg' | wc -l)
	bytes=$(find s -name '*.seg' -o -name '*.zseg' | xargs stat -c %s | awk '{ t += $1 } END { print t }')
	run -0 --separate-stderr at 20 kds-describe --verify s
	[ -z "$stderr" ]
	output_is "s: 2 shards, $nseg segments, 12000 records, $bytes bytes checked: no damage"
	# a damaged block: named with file and offset, and the records lost
	z=$(zsegs s 0 | head -n 1)
	python3 "$DECODE" --blocks "$z" >blocks
	read -r b2 _ _ _ first2 < <(sed -n 2p blocks)
	read -r _ _ _ _ first3 < <(sed -n 3p blocks)
	cp -a s pristine
	flip "$z" $((b2 + 60))
	run -1 --separate-stderr at 20 kds-describe --verify s
	[ "${#stderr_lines[@]}" -eq 1 ]
	stderr_is "kds-describe: s: ${z#s/}: offset $b2: bad block checksum (sequence numbers $(seq_of 0 "$first2") to $(seq_of 0 $((first3 - 1))) unreadable)"
	# --repair leaves damage as it is
	cp "$z" z.before
	run -1 --separate-stderr at 20 kds-describe --verify --repair s
	cmp "$z" z.before
	# a wrong .zidx entry: written anew by --repair
	rm -rf s && cp -a pristine s
	python3 - "${z%.zseg}.zidx" <<'PY'
import ctypes, struct, sys
f = ctypes.CDLL("libxxhash.so.0").XXH3_64bits_withSeed
f.restype = ctypes.c_uint64
f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
raw = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into("<I", raw, 40 + 24, struct.unpack_from("<I", raw, 40 + 24)[0] + 1)
struct.pack_into("<Q", raw, 40 + 32, f(bytes(raw[40:72]), 32, 0))
open(sys.argv[1], "wb").write(raw)
PY
	zi=${z#s/}
	zi=${zi%.zseg}.zidx
	n=$(($(filesize "s/$zi") / 40))
	run -1 --separate-stderr at 20 kds-describe --verify s
	stderr_is "kds-describe: s: $zi: 1 of $n entries do not name their frame"
	run -0 --separate-stderr at 20 kds-describe --verify --repair s
	stderr_is "kds-describe: s: $zi: 1 of $n entries do not name their frame; repaired: written anew"
	run -0 --separate-stderr at 20 kds-describe --verify s
	[ -z "$stderr" ]
	python3 "$DECODE" s >/dev/null
}

@test "an open shard whose last segment exists only compressed: the writer starts a new one" {
	mkstream s --segment-bytes 8K
	clicks 100 | at 10 kds-put -k k s
	clicks 100 | at 20 kds-put -k k s
	last=$(last_seg s 0)
	at 30 kds-expire --compress-after 0s s
	at 30 kds-get $E s >before
	# as after a crash of the machine that lost a roll: the newest segment
	# is empty and short, so that the compressed one before it is last
	: >"$last"
	rm -f "${last%.seg}.idx"
	at 30 kds-get $E s >got
	[ "$(wc -l <got)" -lt "$(wc -l <before)" ]
	run -0 --separate-stderr bash -c "echo next | KDS_NOW=$((T + 40)) kds-put -p -k k s"
	[ -z "$stderr" ]
	[ "$output" = "$Z $(seq_of 0 $(($(wc -l <got) + 1)))" ]
	{ cat got; echo next; } | same - <(at 40 kds-get $E s)
	python3 "$DECODE" --lax-index s >/dev/null
	[ "$(segs s 0 | wc -l)" -eq 1 ]
}

@test "completions and man pages name --compress-after" {
	source "$BATS_TEST_DIRNAME/../completions/kds.bash"
	for t in kds-create kds-expire; do
		COMP_WORDS=($t --)
		COMP_CWORD=1
		COMPREPLY=()
		_kds $t || true
		[[ " ${COMPREPLY[*]} " == *" --compress-after "* ]] || { echo "bash $t" >&2; return 1; }
		grep -q -- "complete -c $t -l compress-after" "$BATS_TEST_DIRNAME/../completions/kds.fish"
		grep -q -- "--compress-after" "$BATS_TEST_DIRNAME/../man/$t.1"
		run -0 $t --help
		grep -q -- "--compress-after" <<<"$output"
	done
	[ "$(grep -c -- "--compress-after" "$BATS_TEST_DIRNAME/../completions/_kds")" -ge 2 ]
}
