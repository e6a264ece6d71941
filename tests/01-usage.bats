#!/usr/bin/env bats
# 01-usage: what every tool does with its command line before it touches a
# stream: --help, --version, unknown options, missing and extra operands.

load helper

TOOLS_UNDER_TEST="kds-create kds-put kds-get kds-describe kds-reshard kds-expire"

@test "every tool is built" {
	for t in $TOOLS_UNDER_TEST; do
		[ -x "$KDS_BUILD/$t" ] || {
			echo "missing $KDS_BUILD/$t" >&2
			return 1
		}
	done
}

@test "--help: synopsis and options on stdout, exit 0, nothing on stderr" {
	for t in $TOOLS_UNDER_TEST; do
		run -0 --separate-stderr "$t" --help
		[ -z "$stderr" ]
		grep -q "^usage: $t " <<<"$output" || {
			echo "$t --help has no 'usage: $t' line:" >&2
			echo "$output" >&2
			return 1
		}
		# one line per option, beyond the synopsis
		[ "${#lines[@]}" -ge 3 ]
	done
}

@test "--help names every option of kds-create" {
	run -0 --separate-stderr kds-create --help
	for o in -n --shards -r --retention --segment-bytes --segment-age --help --version; do
		grep -q -e "$o" <<<"$output" || { echo "no $o in help" >&2; return 1; }
	done
}

@test "--help names every option of kds-put" {
	run -0 --separate-stderr kds-put --help
	for o in -0 -p -i -o -k -f -d -E --skip-invalid --sync --help --version; do
		grep -q -e "$o" <<<"$output" || { echo "no $o in help" >&2; return 1; }
	done
}

@test "--help names every option of kds-get" {
	run -0 --separate-stderr kds-get --help
	for o in -0 -e -n -s -i --sequence --timestamp -o --format -F --follow \
	    --idle-timeout -c --consumer -b --batch --exec --reset --delete --help --version; do
		grep -q -e "$o" <<<"$output" || { echo "no $o in help" >&2; return 1; }
	done
}

@test "--version prints 'TOOL (kds) 0.1.0' to stdout, exit 0" {
	for t in $TOOLS_UNDER_TEST; do
		run -0 --separate-stderr "$t" --version
		output_is "$t (kds) 0.1.0"
		[ -z "$stderr" ]
	done
}

@test "--help and --version ignore a stream operand and touch nothing" {
	for t in $TOOLS_UNDER_TEST; do
		run -0 --separate-stderr "$t" --help s
		run -0 --separate-stderr "$t" --version s
	done
	[ ! -e s ]
}

@test "unknown long option: getopt's line, then usage on stderr, exit 2" {
	for t in $TOOLS_UNDER_TEST; do
		run -2 --separate-stderr "$t" --bogus s
		[ -z "$output" ]
		[ "${stderr_lines[0]}" = "$t: unrecognized option '--bogus'" ]
		has_usage "$t"
	done
	[ ! -e s ]
}

@test "unknown short option: getopt's line, then usage on stderr, exit 2" {
	for t in $TOOLS_UNDER_TEST; do
		run -2 --separate-stderr "$t" -Z s
		[ -z "$output" ]
		[ "${stderr_lines[0]}" = "$t: invalid option -- 'Z'" ]
		has_usage "$t"
	done
	[ ! -e s ]
}

@test "an option without its argument is a usage error, exit 2" {
	run -2 --separate-stderr kds-create -n
	[ "${stderr_lines[0]}" = "kds-create: option requires an argument -- 'n'" ]
	has_usage kds-create
	run -2 --separate-stderr kds-put -k
	[ "${stderr_lines[0]}" = "kds-put: option requires an argument -- 'k'" ]
	has_usage kds-put
	run -2 --separate-stderr kds-get -n
	[ "${stderr_lines[0]}" = "kds-get: option requires an argument -- 'n'" ]
	has_usage kds-get
}

@test "missing stream operand: usage on stderr, exit 2" {
	for t in $TOOLS_UNDER_TEST; do
		run -2 --separate-stderr "$t" </dev/null
		[ -z "$output" ]
		has_usage "$t"
		# the usage is the whole of stderr: no error line invented before it
		[[ ${stderr_lines[0]} == "usage: $t "* ]]
	done
}

# (kds-reshard takes a command after the stream, kds-expire many streams.)
@test "two stream operands: usage on stderr, exit 2, nothing created" {
	for t in kds-create kds-put kds-get kds-describe; do
		run -2 --separate-stderr "$t" a b </dev/null
		[ -z "$output" ]
		has_usage "$t"
	done
	[ ! -e a ]
	[ ! -e b ]
}

@test "--help names every option of kds-describe" {
	run -0 --separate-stderr kds-describe --help
	for o in -j --json --help --version; do
		grep -q -e "$o" <<<"$output" || { echo "no $o in help" >&2; return 1; }
	done
}

@test "kds-put and kds-get on a path that does not exist: one line, exit 1" {
	run -1 --separate-stderr kds-put nosuch </dev/null
	stderr_is "kds-put: nosuch: No such file or directory"
	run -1 --separate-stderr kds-get $E nosuch
	stderr_is "kds-get: nosuch: No such file or directory"
	[ ! -e nosuch ]
}

@test "kds-put and kds-get on a directory that is not a stream: exit 1" {
	mkdir plain
	run -1 --separate-stderr kds-put plain </dev/null
	stderr_is "kds-put: plain: not a stream (no meta file)"
	run -1 --separate-stderr kds-get $E plain
	stderr_is "kds-get: plain: not a stream (no meta file)"
	[ -z "$(ls -A plain)" ]
}

@test "--help and --version on a full stdout: exit 1 and say so" {
	for t in $TOOLS_UNDER_TEST; do
		for o in --help --version; do
			run -1 --separate-stderr bash -c "$t $o >/dev/full"
			[[ $stderr == "$t: "*"No space left on device" ]]
			[ "${#stderr_lines[@]}" -eq 1 ]
		done
	done
}

# The loose test above checks every tool; this one each line exactly:
# the file that failed is stdout, and there is no stream yet to name.
@test "--help and --version on a full stdout: the line is 'TOOL: stdout: ERROR'" {
	for t in $TOOLS_UNDER_TEST; do
		for o in --help --version; do
			run -1 --separate-stderr bash -c "$t $o >/dev/full"
			stderr_is "$t: stdout: No space left on device"
			[ -z "$output" ]
		done
	done
}
