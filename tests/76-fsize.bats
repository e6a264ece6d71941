#!/usr/bin/env bats
# 76-fsize: every tool that writes, under a file size limit of 0 (ulimit -f):
# each write fails with EFBIG, which the tools ignore SIGXFSZ to see.  Exit
# 1 with one line naming the error, and nothing lost or half-made.

load helper

setup() {
	kds_setup
	fixed_clock
}

# limited CMD...: CMD under `ulimit -f 0`, stdout to /dev/null; its status,
# and its stderr in err through a pipe (a file could not be written).
limited() {
	(ulimit -f 0 && exec "$@" 2>&1 >/dev/null) | cat >err
	status=${PIPESTATUS[0]}
}

# refused TOOL: the limited run failed as it should.
refused() {
	[ "$status" -eq 1 ] || { echo "exit $status: $(cat err)" >&2; return 1; }
	[ "$(wc -l <err)" -eq 1 ] && [[ $(cat err) == "$1: "*"File too large" ]] ||
	    { echo "stderr: $(cat err)" >&2; return 1; }
}

@test "kds-create: File too large, and no stream left" {
	limited kds-create s
	refused kds-create
	[ ! -e s ] && [ "$(ls -A)" = err ] || { ls -A >&2; return 1; }
}

@test "kds-get -c: File too large; the next run delivers every record" {
	mkstream s
	lines 50 r | kds-put s
	limited kds-get -c c s
	refused kds-get
	# no checkpoint could be written: the next run starts from the first
	run -0 --separate-stderr kds-get -c c s
	output_is "$(lines 50 r)"
}

@test "kds-reshard: File too large, the stream as it was" {
	mkstream s -n 2
	lines 50 r | kds-put s
	before=$(cd s && find . -type f | sort | xargs md5sum)
	limited kds-reshard s split 0
	refused kds-reshard
	[ "$(cd s && find . -type f | sort | xargs md5sum)" = "$before" ]
	run -0 --separate-stderr kds-reshard s split 0
}

@test "kds-expire -a: File too large, every record still in the stream" {
	mkstream s -r 1h
	lines 50 r | put_at $T -k k s
	mkdir arch
	export KDS_NOW=$((T + 2 * 3600))
	limited kds-expire -a arch s
	refused kds-expire
	[ -z "$(find arch -type f)" ]
	run -0 --separate-stderr kds-expire -a arch s
	[ -n "$(find arch -type f -name '*.tar.zst')" ]
}
