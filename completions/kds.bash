# bash completion for the kds tools: kds-create, kds-put, kds-get,
# kds-describe, kds-expire, kds-reshard.
# A stream is a directory holding a file named meta; see kds-stream(5).
# A bare stream name (no slash) means $KDS_ROOT/name when KDS_ROOT is set.
# Install as kds-create, kds-put, kds-get, kds-describe, kds-expire and
# kds-reshard in bash-completion's completions directory (links to this
# file), or source it: it needs none of bash-completion's helpers.

# _kds_path name: the path of a stream named on the command line, as the
# tools find it (libstream/stream.c, resolve()).
_kds_path()
{
	if [[ -n ${KDS_ROOT-} && $1 != */* && $1 != . && $1 != .. ]]; then
		printf '%s\n' "$KDS_ROOT/$1"
	else
		printf '%s\n' "$1"
	fi
}

# _kds_dirs cur streams: reply with the directories matching cur;
# stream directories without a trailing slash when streams is 1, the others
# with one so that completion goes on inside them.  With KDS_ROOT set, a
# bare name is a stream of $KDS_ROOT, and a local directory needs a slash.
_kds_dirs()
{
	local d nospace=0 root=0 IFS=$'\n'

	if [[ $2 == 1 && -n ${KDS_ROOT-} && $1 != */* ]]; then
		root=1
		for d in "$KDS_ROOT"/"$1"*/; do
			[[ -f ${d}meta ]] || continue
			d=${d%/}
			COMPREPLY+=("${d##*/}")
		done
	fi
	for d in $(compgen -d -- "$1"); do
		if [[ $2 == 1 && $root == 0 && -f $d/meta ]]; then
			COMPREPLY+=("$d")
		else
			COMPREPLY+=("$d/")
			nospace=1
		fi
	done
	((nospace)) && compopt -o nospace 2>/dev/null
	return 0
}

# _kds_stream_arg: print the first operand on the command line, skipping
# options and the arguments of those that take one (listed in $_kds_argopts).
_kds_stream_arg()
{
	local i w skip=0

	for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
		((i == COMP_CWORD)) && { skip=0; continue; }
		w=${COMP_WORDS[i]}
		if ((skip)); then
			skip=0
		elif [[ $w == = ]]; then
			skip=1		# --opt = value, split at '='
		elif [[ $w == -- ]]; then
			((i + 1 < ${#COMP_WORDS[@]} && i + 1 != COMP_CWORD)) &&
				printf '%s\n' "${COMP_WORDS[i + 1]}"
			return
		elif [[ " $_kds_argopts " == *" $w "* ]]; then
			skip=1
		elif [[ $w != -* ]]; then
			printf '%s\n' "$w"
			return
		fi
	done
}

# _kds_shards stream cur [open]: shard ids from the stream's meta (field 2
# of the lines that start with "shard "); with open, only open shards.
_kds_shards()
{
	local key id state rest

	set -- "$(_kds_path "$1")" "${@:2}"
	[[ -r $1/meta ]] || return 0
	while read -r key id state rest; do
		[[ $key == shard && $id == "$2"* ]] || continue
		[[ -z ${3-} || $state == "$3" ]] && COMPREPLY+=("$id")
	done <"$1/meta"
	return 0
}

# _kds_reshard: the operands of kds-reshard: stream, command, then shards.
_kds_reshard()
{
	local i w cur=${COMP_WORDS[COMP_CWORD]}
	local -a ops=()

	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		[[ $w == -* ]] || ops+=("$w")
	done
	case ${#ops[@]}:${ops[1]-} in
	0:) _kds_dirs "$cur" 1 ;;
	1:) COMPREPLY=($(compgen -W 'split merge scale' -- "$cur")) ;;
	2:split | 2:merge | 3:merge) _kds_shards "${ops[0]}" "$cur" open ;;
	esac
	return 0
}

# _kds_consumers stream cur: the stream's named consumers, the
# directories under STREAM/consumers.
_kds_consumers()
{
	local d

	set -- "$(_kds_path "$1")" "$2"
	[[ -d $1/consumers ]] || return 0
	for d in "$1"/consumers/"$2"*/; do
		[[ -d $d ]] || continue
		d=${d%/}
		COMPREPLY+=("${d##*/}")
	done
	return 0
}

_kds()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local opt= pre= opts values= IFS=$' \t\n'
	local _kds_argopts

	COMPREPLY=()
	case $1 in
	kds-create)
		opts='-n --shards -r --retention --segment-bytes --segment-age
		    --group --compress-after -h --help -V --version'
		_kds_argopts='-n --shards -r --retention --segment-bytes --segment-age --group --compress-after'
		;;
	kds-put)
		opts='-0 --null -p --print-sequence -i --input -o --output
		    -k --partition-key -f --field -d --delimiter
		    -E --explicit-hash-key --skip-invalid --sync= -h --help
		    -V --version'
		_kds_argopts='-i --input -o --output -k --partition-key -f --field -d --delimiter -E --explicit-hash-key'
		;;
	kds-get)
		opts='-0 --null -n --limit -s --shard -i --iterator --sequence
		    --timestamp -o --output --format -F --follow --idle-timeout
		    -c --consumer -b --batch --exec --reset --delete --archive
		    -h --help -V --version'
		_kds_argopts='-n --limit -s --shard -i --iterator --sequence --timestamp -o --output --format --idle-timeout -c --consumer -b --batch --exec'
		;;
	kds-describe)
		opts='-j --json --verify --repair -h --help -V --version'
		_kds_argopts=''
		;;
	kds-expire)
		opts='-a --archive -r --retention --compress-after -n --dry-run
		    -v --verbose --no-wait -h --help -V --version'
		_kds_argopts='-a --archive -r --retention --compress-after'
		;;
	kds-reshard)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W '-j --json -h --help -V --version' \
			    -- "$cur"))
		else
			_kds_reshard
		fi
		return 0
		;;
	*)
		return 0
		;;
	esac

	# Which option's argument is being completed, if any.  With '=' in
	# COMP_WORDBREAKS, "--opt=val" arrives as three words.
	if [[ $cur == --*=* ]]; then
		opt=${cur%%=*} pre=$opt= cur=${cur#*=}
	elif [[ $cur == = && $prev == --* ]]; then
		opt=$prev cur=
	elif [[ $prev == = && $COMP_CWORD -ge 2 ]]; then
		opt=${COMP_WORDS[COMP_CWORD - 2]}
	elif [[ " $_kds_argopts " == *" $prev "* ]]; then
		opt=$prev
	fi

	case $1:$opt in
	kds-put:-i | kds-put:--input) values='lines jsonl' ;;
	kds-put:-o | kds-put:--output) values='text jsonl' ;;
	kds-put:--sync) values='exit always never' ;;
	kds-get:-i | kds-get:--iterator)
		values='TRIM_HORIZON LATEST AT_SEQUENCE_NUMBER
		    AFTER_SEQUENCE_NUMBER AT_TIMESTAMP'
		;;
	kds-get:-o | kds-get:--output) values='lines raw jsonl' ;;
	kds-create:--group)
		COMPREPLY=($(compgen -g -- "$cur"))
		COMPREPLY=("${COMPREPLY[@]/#/$pre}")
		return 0
		;;
	kds-expire:-a | kds-expire:--archive)
		_kds_dirs "$cur" 0
		COMPREPLY=("${COMPREPLY[@]/#/$pre}")
		return 0
		;;
	kds-get:-c | kds-get:--consumer)
		_kds_consumers "$(_kds_stream_arg)" "$cur"
		COMPREPLY=("${COMPREPLY[@]/#/$pre}")
		return 0
		;;
	kds-get:--exec)
		COMPREPLY=($(compgen -c -- "$cur"))
		return 0
		;;
	kds-get:-s | kds-get:--shard)
		_kds_shards "$(_kds_stream_arg)" "$cur"
		COMPREPLY=("${COMPREPLY[@]/#/$pre}")
		return 0
		;;
	*:)
		;;
	*)
		return 0	# a number, key or time: nothing to offer
		;;
	esac
	if [[ -n $opt ]]; then
		COMPREPLY=($(compgen -W "$values" -- "$cur"))
		COMPREPLY=("${COMPREPLY[@]/#/$pre}")
		return 0
	fi

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		[[ ${#COMPREPLY[@]} == 1 && $COMPREPLY == *= ]] &&
			compopt -o nospace 2>/dev/null
		return 0
	fi
	if [[ $1 == kds-create ]]; then
		_kds_dirs "$cur" 0	# a new stream: only its parent exists
	elif [[ $1 == kds-get && " ${COMP_WORDS[*]} " == *" --archive "* ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))	# archive files
		compopt -o filenames 2>/dev/null
	else
		_kds_dirs "$cur" 1
	fi
	return 0
}

complete -F _kds kds-create kds-put kds-get kds-describe kds-expire kds-reshard
