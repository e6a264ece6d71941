# fish completion for the kds tools: kds-create, kds-put, kds-get,
# kds-describe, kds-expire, kds-reshard.
# A stream is a directory holding a file named meta; see kds-stream(5).
# A bare stream name (no slash) means $KDS_ROOT/name when KDS_ROOT is set.
# Install as kds-create.fish, kds-put.fish, kds-get.fish, kds-describe.fish,
# kds-expire.fish and kds-reshard.fish (links to this file) in a directory
# of $fish_complete_path, or source it.

# The path of a stream named on the command line, as the tools find it.
function __kds_path
    if set -q KDS_ROOT; and test -n "$KDS_ROOT"
        and not string match -q -- '*/*' $argv[1]
        and not contains -- $argv[1] . ..
        printf '%s\n' $KDS_ROOT/$argv[1]
    else
        printf '%s\n' $argv[1]
    end
end

# Stream directories, and other directories to go on into; with KDS_ROOT
# set, a bare name is a stream there, and a local directory needs a slash.
function __kds_streams
    set -l tok (commandline -ct)
    if set -q KDS_ROOT; and test -n "$KDS_ROOT"
        and not string match -q -- '*/*' $tok
        for d in $KDS_ROOT/$tok*/
            test -f $d/meta; and printf '%s\tstream in %s\n' (basename $d) $KDS_ROOT
        end
        for d in $tok*/
            printf '%s\n' $d
        end
        return
    end
    for d in $tok*/
        if test -f $d/meta
            printf '%s\tstream\n' (string replace -r '/$' '' -- $d)
        else
            printf '%s\n' $d
        end
    end
end

# Print the first operand among the words given: not an option, nor the
# argument of a kds-get option that takes one.
function __kds_operand
    set -l skip 0
    set -l opts 1
    for w in $argv
        if test $skip = 1
            set skip 0
        else if test $opts = 1; and test "$w" = --
            set opts 0
        else if test $opts = 1; and contains -- $w -n --limit -s --shard -i --iterator --sequence --timestamp -o --output --format --idle-timeout -c --consumer -b --batch --exec
            set skip 1
        else if test $opts = 1; and string match -q -- '-*' $w
            continue
        else
            printf '%s\n' $w
            return 0
        end
    end
    return 1
end

# The stream of the kds-get being completed: the first operand before the
# cursor, else the first one after it.
function __kds_get_stream
    set -l before (commandline -opc)
    __kds_operand $before[2..-1]; and return 0
    set -l all (commandline -op)
    set -l next (math (count $before) + 1)
    set -l cur (commandline -ct)
    test -n "$cur"; and set next (math $next + 1)
    __kds_operand $all[$next..-1]
end

# Shard ids from STREAM/meta: field 2 of the lines that start with "shard ".
function __kds_shards
    set -l stream (__kds_get_stream); or return
    set stream (__kds_path $stream)
    test -r $stream/meta; or return
    while read -l key id rest
        test "$key" = shard; and printf '%s\n' $id
    end <$stream/meta
end

# The operands of the kds-reshard being completed, before the cursor.
function __kds_reshard_operands
    for w in (commandline -opc)[2..-1]
        string match -q -- '-*' $w; or printf '%s\n' $w
    end
end

# Does the kds-reshard command line have N operands, and (if given) is the
# command one of the others given?
function __kds_reshard_at
    set -l ops (__kds_reshard_operands)
    test (count $ops) -eq $argv[1]; or return 1
    test (count $argv) -eq 1; and return 0
    contains -- $ops[2] $argv[2..-1]
end

# Open shard ids of kds-reshard's stream.
function __kds_open_shards
    set -l stream (__kds_reshard_operands)[1]
    test -n "$stream"; or return
    set stream (__kds_path $stream)
    test -r "$stream/meta"; or return
    while read -l key id state rest
        test "$key" = shard; and test "$state" = open; and printf '%s\n' $id
    end <$stream/meta
end

# Named consumers of the stream: the directories under STREAM/consumers.
function __kds_consumers
    set -l stream (__kds_get_stream); or return
    set stream (__kds_path $stream)
    test -d $stream/consumers; or return
    for d in $stream/consumers/*/
        basename $d
    end
end

for c in kds-create kds-put kds-get kds-describe kds-expire kds-reshard
    complete -c $c -f
    complete -c $c -s h -l help -d 'Print the synopsis and options'
    complete -c $c -s V -l version -d 'Print the version'
end

complete -c kds-create -s n -l shards -x -d 'Number of shards (1-10000)'
complete -c kds-create -s r -l retention -x -d 'How long records stay readable (1s-8760h)'
complete -c kds-create -l segment-bytes -x -d 'Size past which a new segment starts (4096-1G)'
complete -c kds-create -l segment-age -x -d 'Age past which a new segment starts'
complete -c kds-create -l group -x -a '(__fish_complete_groups)' -d 'Share the stream with the members of this group'
complete -c kds-create -l compress-after -x -d 'kds-expire compresses sealed segments this old (0s-8760h)'
complete -c kds-create -x -a '(__fish_complete_directories (commandline -ct) Directory)'

complete -c kds-put -s 0 -l null -d 'Input records end with NUL'
complete -c kds-put -s p -l print-sequence -d 'Print shard id and sequence number of each record'
complete -c kds-put -s i -l input -x -a 'lines jsonl' -d 'Input format'
complete -c kds-put -s o -l output -x -a 'text jsonl' -d 'Form of what -p prints'
complete -c kds-put -s k -l partition-key -x -d 'Partition key of every record'
complete -c kds-put -s f -l field -x -d 'Partition key is this field'
complete -c kds-put -s d -l delimiter -x -d 'Field delimiter for -f'
complete -c kds-put -s E -l explicit-hash-key -x -d 'Route every record by this hash key'
complete -c kds-put -l skip-invalid -d 'Skip invalid records instead of stopping'
complete -c kds-put -l sync -x -a 'exit always never' -d 'When to sync'
complete -c kds-put -x -a '(__kds_streams)'

complete -c kds-get -s 0 -l null -d 'End each record with NUL'
complete -c kds-get -s n -l limit -x -d 'Stop after this many records'
complete -c kds-get -s s -l shard -x -a '(__kds_shards)' -d 'Read only this shard'
complete -c kds-get -s i -l iterator -x -a 'TRIM_HORIZON LATEST AT_SEQUENCE_NUMBER AFTER_SEQUENCE_NUMBER AT_TIMESTAMP' -d 'Where to start'
complete -c kds-get -l sequence -x -d 'Sequence number for AT_ and AFTER_SEQUENCE_NUMBER'
complete -c kds-get -l timestamp -x -d 'Time for AT_TIMESTAMP'
complete -c kds-get -s o -l output -x -a 'lines raw jsonl' -d 'Output format'
complete -c kds-get -l format -x -d 'Print each record as this format'
complete -c kds-get -l archive -d 'Read archives of kds-expire instead of a stream'
complete -c kds-get -n '__fish_contains_opt archive' -F
complete -c kds-get -s F -l follow -d 'Keep reading as records arrive'
complete -c kds-get -l idle-timeout -x -d 'With -F, exit after this long without a record'
complete -c kds-get -s c -l consumer -x -a '(__kds_consumers)' -d 'Read as this named consumer'
complete -c kds-get -s b -l batch -x -d 'At most this many records a batch'
complete -c kds-get -l exec -x -a '(__fish_complete_command)' -d 'Run this command per batch'
complete -c kds-get -l reset -d "Forget the consumer's checkpoints"
complete -c kds-get -l delete -d 'Drop the consumer'
complete -c kds-get -x -a '(__kds_streams)'

complete -c kds-describe -s j -l json -d 'One JSON document with AWS key names'
complete -c kds-describe -l verify -d 'Check every checksum, as fsck does'
complete -c kds-describe -l repair -d 'With --verify, fix what is safe to fix'
complete -c kds-describe -x -a '(__kds_streams)'

complete -c kds-expire -s a -l archive -x -a '(__fish_complete_directories (commandline -ct) Directory)' -d 'Archive expired segments under this directory'
complete -c kds-expire -s r -l retention -x -d 'Change the retention first (1s-8760h)'
complete -c kds-expire -l compress-after -x -d 'Change compress-after first, then compress (0s-8760h)'
complete -c kds-expire -s n -l dry-run -d 'Say what would be done, do nothing'
complete -c kds-expire -s v -l verbose -d 'Say what is done'
complete -c kds-expire -l no-wait -d 'Skip a stream that another process has locked'
complete -c kds-expire -x -a '(__kds_streams)'
complete -c kds-reshard -s j -l json -d 'Print the shards made as JSON lines'
complete -c kds-reshard -n '__kds_reshard_at 0' -x -a '(__kds_streams)'
complete -c kds-reshard -n '__kds_reshard_at 1' -x -a 'split\t"Split a shard in two" merge\t"Merge two adjacent shards" scale\t"Scale to N even shards"'
complete -c kds-reshard -n '__kds_reshard_at 2 split merge; or __kds_reshard_at 3 merge' -x -a '(__kds_open_shards)'
