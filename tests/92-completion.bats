#!/usr/bin/env bats
# 92-completion: what completions/kds.bash offers, and _kds (zsh) and
# kds.fish where those shells are installed: each tool's options, as
# getopt_long knows them in cmd/*.c; stream directories; shard ids read
# from a real stream's meta; consumer names; iterator types; bare names
# under KDS_ROOT.

load helper

REPO=$BATS_TEST_DIRNAME/..
COMP=$REPO/completions

# Options that other engineers are adding to the tools now: the completions
# offer them ahead of the code.  An option here that the code has is fine.
PENDING='kds-create:--group kds-describe:--verify kds-describe:--repair'

setup() {
	kds_setup
	# As in an interactive shell: bash-completion's helpers when they are
	# installed.  kds.bash needs none of them, so without it nothing is
	# stubbed.
	if [ -r /usr/share/bash-completion/bash_completion ]; then
		source /usr/share/bash-completion/bash_completion || true
	fi
	source "$COMP/kds.bash"
}

tools() {
	sed -n 's/^TOOLS[[:space:]]*=[[:space:]]*//p' "$REPO/Makefile" | tr ' ' '\n'
}

# options TOOL: every option of cmd/TOOL.c, -x and --long, one a line:
# the letters of its getopt_long string and the names of its longopts.
options() {
	local c=$REPO/cmd/$1.c p
	grep -o 'getopt_long(argc, argv, "[^"]*"' "$c" |
	    sed 's/.*"\(.*\)"/\1/; s/://g' | fold -w 1 | sed 's/^/-/'
	sed -n '/struct option longopts/,/};/s/.*{ "\([a-z0-9-]*\)".*/--\1/p' "$c"
	for p in $PENDING; do
		[[ $p == "$1":* ]] && echo "${p#*:}"
	done
}

# comp WORD...: what bash completion offers for the last WORD, with the
# words before it on the line, sorted, one a line.  CW=N puts the cursor on
# word N instead.  "--opt=val" is three words, "--opt" "=" "val", as
# readline splits it at COMP_WORDBREAKS.
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=${CW:-$(($# - 1))}
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_kds "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" \
	    2>/dev/null
	((${#COMPREPLY[@]} == 0)) || printf '%s\n' "${COMPREPLY[@]}" | sort
}

# offers WORDS... -- EXPECTED...: comp WORDS offers exactly EXPECTED.
offers() {
	local -a words=()
	while [ "$1" != -- ]; do
		words+=("$1")
		shift
	done
	shift
	local got want
	got=$(comp "${words[@]}")
	want=$( (($# == 0)) || printf '%s\n' "$@" | sort)
	if [ "$got" != "$want" ]; then
		printf 'completing: %s\nexpected:\n%s\ngot:\n%s\n' \
		    "${words[*]}" "$want" "$got" >&2
		return 1
	fi
}

# a stream of 3 shards, shard 0 split (so 0 is closed, 3 and 4 open), and
# two consumers; a plain directory beside it, and a file.
fixture() {
	mkstream clicks -n 3
	kds-reshard clicks split 0 >/dev/null
	printf 'a\nb\n' | kds-put clicks
	kds-get -c etl -n 1 clicks >/dev/null
	kds-get -c reports -n 1 clicks >/dev/null
	mkdir -p logs/old
	touch clicks.txt
}

@test "bash: every tool offers each of its options, and no other" {
	local t want got
	for t in $(tools); do
		want=$(options "$t" | sort -u)
		got=$(comp "$t" - | sed 's/=$//' | sort -u)
		if [ "$got" != "$want" ]; then
			echo "$t: options differ from cmd/$t.c (< source, > completion):" >&2
			diff <(echo "$want") <(echo "$got") >&2
			return 1
		fi
	done
}

@test "bash: long options complete from a prefix" {
	offers kds-get --it -- --iterator
	offers kds-put --sk -- --skip-invalid
	offers kds-expire --no -- --no-wait
	offers kds-describe --j -- --json
	offers kds-reshard --v -- --version
	offers kds-create --seg -- --segment-age --segment-bytes
}

@test "bash: stream operands are stream directories; others end in a slash" {
	fixture
	offers kds-get "" -- clicks logs/
	offers kds-put c -- clicks
	offers kds-describe l -- logs/
	offers kds-expire -v "" -- clicks logs/
	offers kds-reshard "" -- clicks logs/
	# kds-expire takes several streams
	offers kds-expire clicks "" -- clicks logs/
	# a new stream: only the directories it may go in
	offers kds-create -n 2 "" -- clicks/ logs/
}

@test "bash: -s offers the shard ids of the stream's meta, before or after it" {
	fixture
	local all=(shardId-00000000000{0,1,2,3,4})
	offers kds-get clicks -s "" -- "${all[@]}"
	CW=2 offers kds-get -s "" clicks -- "${all[@]}"
	CW=3 offers kds-get --shard = "" clicks -- "${all[@]}"
	offers kds-get -n 5 ./clicks --shard "shardId-000000000003" -- \
	    shardId-000000000003
	# no stream on the line, or no such stream: nothing
	offers kds-get -s "" --
	offers kds-get nosuch -s "" --
}

@test "bash: the ids come from meta, not from the shard directories" {
	fixture
	mkdir clicks/shardId-000000000099
	sed -i '/^shard shardId-000000000002 /d' clicks/meta
	offers kds-get clicks -s "" -- shardId-00000000000{0,1,3,4}
}

@test "bash: kds-reshard offers commands, then only open shards" {
	fixture
	offers kds-reshard clicks "" -- merge scale split
	offers kds-reshard clicks s -- scale split
	offers kds-reshard clicks split "" -- shardId-00000000000{1,2,3,4}
	offers kds-reshard -j clicks merge shardId-000000000003 "" -- \
	    shardId-00000000000{1,2,3,4}
	offers kds-reshard clicks scale "" --
}

@test "bash: -c offers the stream's consumers" {
	fixture
	offers kds-get clicks -c "" -- etl reports
	CW=2 offers kds-get -c "" clicks -- etl reports
	CW=4 offers kds-get -F --consumer = e clicks -- etl
	offers kds-get -c "" -- # no stream yet
	offers kds-get logs -c "" --
}

@test "bash: -i offers the iterator types" {
	offers kds-get -i "" -- TRIM_HORIZON LATEST AT_SEQUENCE_NUMBER \
	    AFTER_SEQUENCE_NUMBER AT_TIMESTAMP
	offers kds-get --iterator = AT -- AT_SEQUENCE_NUMBER AT_TIMESTAMP
	offers kds-get clicks --iterator A -- AT_SEQUENCE_NUMBER \
	    AFTER_SEQUENCE_NUMBER AT_TIMESTAMP
}

@test "bash: the values of other options" {
	fixture
	offers kds-put -i "" -- jsonl lines
	offers kds-put --output "" -- jsonl text
	offers kds-put --sync = a -- always
	offers kds-get -o "" -- jsonl lines raw
	offers kds-expire -a "" -- clicks/ logs/
	# numbers, keys and times: nothing to offer
	offers kds-get -n "" --
	offers kds-create -r "" --
	offers kds-put -k "" --
	# --archive reads files
	run -0 comp kds-get --archive clicks
	[[ $output == *clicks.txt* ]]
}

@test "bash: kds-create --group offers group names" {
	local g
	g=$(id -gn)
	run -0 comp kds-create --group "${g:0:2}"
	[[ " ${lines[*]} " == *" $g "* ]]
	run -0 comp kds-create --group = "$g"
	[[ " ${lines[*]} " == *" $g "* ]]
}

@test "bash: under KDS_ROOT, bare names are streams there; local ones need a slash" {
	fixture
	mkdir root
	mkstream root/orders -n 2
	mkstream root/oranges
	mkdir root/notes
	export KDS_ROOT=$PWD/root
	offers kds-get or -- oranges orders
	offers kds-get "" -- clicks/ logs/ oranges orders root/
	offers kds-get ./c -- ./clicks
	offers kds-get orders -s "" -- shardId-00000000000{0,1}
	offers kds-get ./clicks -s "" -- shardId-00000000000{0,1,2,3,4}
	offers kds-reshard orders split "" -- shardId-00000000000{0,1}
	kds-get -c etl orders >/dev/null
	offers kds-get orders -c "" -- etl
}

@test "zsh: _kds parses" {
	command -v zsh >/dev/null || skip "no zsh"
	run -0 zsh -n "$COMP/_kds"
}

@test "fish: kds.fish parses" {
	command -v fish >/dev/null || skip "no fish"
	run -0 fish -n "$COMP/kds.fish"
}

# zcomp LINE...: what zsh's completion system offers at the end of each
# LINE, through a zsh on a pseudo-terminal with _kds on its fpath: the
# matches, sorted, after a line "== LINE".  TAB runs a widget that completes
# and then prints <<END>>, and the next line is typed only after that: zsh
# may skip work while keys are pending.
zcomp() {
	cat >"$BATS_TEST_TMPDIR/zcomp.zsh" <<'EOF'
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PROMPT= RPROMPT=; fpath=(${(q)COMP} \$fpath); autoload -U compinit; compinit -u -D"
# Print each match as compadd gets it.
zpty -w z 'compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits; local __h
  builtin compadd -A __hits "$@"
  for __h in $__hits; do print -r -- "<<$__h>>"; done
  builtin compadd "$@"
}'
zpty -w z 'kds-complete() { zle complete-word; print -r -- "<<EN""D>>" }'
zpty -w z 'zle -N kds-complete; bindkey "^I" kds-complete; zstyle ":completion:*" menu no'
zpty -w z "cd ${(q)PWD}; echo READ\"\"Y"
while zpty -r z l; do [[ $l == *READY* ]] && break; done
for line in "$@"; do
  zpty -w -n z "$line"$'\t'
  print -r -- "== $line"
  while zpty -r z l; do
    [[ $l == *'<<END>>'* ]] && break
    [[ $l == *'<<'*'>>'* ]] && print -r -- ${${l#*<<}%%>>*}
  done | sort -u
  zpty -w -n z $'\C-u'
done
zpty -d z
EOF
	COMP=$COMP timeout 60 zsh -f "$BATS_TEST_TMPDIR/zcomp.zsh" "$@"
}

@test "zsh: options, streams, shards, consumers, iterator types, KDS_ROOT" {
	command -v zsh >/dev/null || skip "no zsh"
	zsh -c 'zmodload zsh/zpty' 2>/dev/null || skip "no zsh/zpty"
	fixture
	mkdir root
	mkstream root/orders -n 2
	local t lines=()
	for t in $(tools); do
		lines+=("$t -")
	done
	run -0 zcomp "${lines[@]}" 'kds-get clicks -s ' 'kds-get clicks -c ' \
	    'kds-get -i ' 'kds-reshard clicks split ' 'kds-get c' \
	    "kds-create --group=$(id -gn)"
	# section LINE: the matches printed after "== LINE"
	section() {
		awk -v h="== $1" '$0 == h { on = 1; next } /^== / { on = 0 } on' \
		    <<<"$output"
	}
	for t in $(tools); do
		diff <(options "$t" | sort -u) <(section "$t -" | sort -u) >&2 || {
			echo "zsh: $t: options differ (< source, > completion)" >&2
			return 1
		}
	done
	[ "$(section 'kds-get clicks -s ' | tr '\n' ' ')" = \
	    "$(printf 'shardId-00000000000%d ' 0 1 2 3 4)" ]
	[ "$(section 'kds-get clicks -c ' | tr '\n' ' ')" = "etl reports " ]
	[ "$(section 'kds-get -i ' | tr '\n' ' ')" = \
	    "AFTER_SEQUENCE_NUMBER AT_SEQUENCE_NUMBER AT_TIMESTAMP LATEST TRIM_HORIZON " ]
	[ "$(section 'kds-reshard clicks split ' | tr '\n' ' ')" = \
	    "$(printf 'shardId-00000000000%d ' 1 2 3 4)" ]
	section 'kds-get c' | grep -qx clicks
	section "kds-create --group=$(id -gn)" | grep -qx "$(id -gn)"
	KDS_ROOT=$PWD/root run -0 zcomp 'kds-get or' 'kds-get orders -s '
	section 'kds-get or' | grep -qx orders
	[ "$(section 'kds-get orders -s ' | tr '\n' ' ')" = \
	    "shardId-000000000000 shardId-000000000001 " ]
}

# fcomp LINE: what fish offers at the end of LINE, the matches only, sorted.
fcomp() {
	fish -N -c "source ${COMP@Q}/kds.fish; complete -C ${1@Q}" | cut -f 1 | sort
}

@test "fish: options, streams, shards, consumers, iterator types, KDS_ROOT" {
	command -v fish >/dev/null || skip "no fish"
	fixture
	mkdir root
	mkstream root/orders -n 2
	local t
	for t in $(tools); do
		# fish offers -x and --long apart only when asked for "-"
		diff <(options "$t" | sort -u) \
		    <({ fcomp "$t -"; fcomp "$t --"; } | grep -- '^-' | sort -u) >&2 || {
			echo "fish: $t: options differ (< source, > completion)" >&2
			return 1
		}
	done
	[ "$(fcomp 'kds-get clicks -s ' | tr '\n' ' ')" = \
	    "$(printf 'shardId-00000000000%d ' 0 1 2 3 4)" ]
	[ "$(fcomp 'kds-get clicks -c ' | tr '\n' ' ')" = "etl reports " ]
	[ "$(fcomp 'kds-get -i ' | tr '\n' ' ')" = \
	    "AFTER_SEQUENCE_NUMBER AT_SEQUENCE_NUMBER AT_TIMESTAMP LATEST TRIM_HORIZON " ]
	[ "$(fcomp 'kds-reshard clicks split ' | tr '\n' ' ')" = \
	    "$(printf 'shardId-00000000000%d ' 1 2 3 4)" ]
	[ "$(fcomp 'kds-get c' | tr '\n' ' ')" = "clicks " ]
	fcomp "kds-create --group $(id -gn)" | grep -qx "$(id -gn)"
	export KDS_ROOT=$PWD/root
	fcomp 'kds-get or' | grep -qx orders
	[ "$(fcomp 'kds-get orders -s ' | tr '\n' ' ')" = \
	    "shardId-000000000000 shardId-000000000001 " ]
}
