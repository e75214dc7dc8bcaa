# shellcheck shell=sh
# bench/fs's workloads, one definition for all three places they run: the
# guest on the virtio-fs share and on ext4 on a virtio disk
# (tests/lab/fsbenchguest/init), and the host natively (bench/fs.sh).
# POSIX sh (busybox), sourced; needs fio and fsmeta (bench/fsmeta.c).
#
#   fsjob JOB DIR     runs JOB in DIR, prints one line "key=value ..."
#                     (or "error=...")
# with FSB_SIZE_MB (the fio file), FSB_RUNTIME (seconds of random reads),
# FSB_FILES and FSB_FILE_BYTES (the metadata files), FSB_TAR (the tarball).
# Jobs:
#   seqwrite   fio: write DIR/fio.dat, FSB_SIZE_MB MiB in 1 MiB writes,
#              buffered (direct=0), fsync at the end (in fio's time)
#   seqread    fio: read it back in 1 MiB reads, page cache dropped first
#   randread   fio: 4 KiB reads at random offsets, one at a time, for
#              FSB_RUNTIME s, page cache dropped first; fio's random map
#              reads no block twice and its fadvise(RANDOM) turns off
#              readahead, so every read goes to the file system
#   meta       fsmeta: create (+ write FSB_FILE_BYTES), stat (caches
#              dropped first), unlink FSB_FILES files, syncfs after each
#   untar      busybox tar -xf FSB_TAR into DIR/untar, then syncfs
#   clean      removes what the jobs left, then fstrim (ext4 on a disk:
#              hands the blocks back to the host's file); not timed
FSB_SIZE_MB=${FSB_SIZE_MB:-512}
FSB_RUNTIME=${FSB_RUNTIME:-10}
FSB_FILES=${FSB_FILES:-10000}
FSB_FILE_BYTES=${FSB_FILE_BYTES:-1024}
FSB_TAR=${FSB_TAR:-/lab/fsbench-tree.tar}

fsb_drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
}

# fsb_fio DIR NAME ARGS...: fio's numbers from its terse (v3) line: for a
# write job fields 47-50 (KiB, KiB/s, IOPS, ms), for a read job 6-9.
fsb_fio() {
    dir=$1 name=$2
    shift 2
    out=$(fio --name="$name" --filename="$dir/fio.dat" --size="${FSB_SIZE_MB}M" --ioengine=psync \
              --direct=0 --thread --minimal "$@" 2>&1)
    case $name in
    *write*) f=47 ;;
    *) f=6 ;;
    esac
    echo "$out" | awk -F';' -v f="$f" '
        $1 == 3 && NF > 50 { printf "kib=%s kib_s=%s iops=%s ms=%s\n", $f, $(f + 1), $(f + 2), $(f + 3); ok = 1 }
        END { if (!ok) exit 1 }' ||
        echo "error=$(echo "$out" | tail -n 2 | tr '\n' ' ' | cut -c1-200)"
}

# fsb_result OUTPUT: fsmeta's RESULT line as "key=value ...", or its error.
fsb_result() {
    case $1 in
    *"RESULT "*) echo "$1" | sed -n 's/^RESULT //p' | tail -n 1 ;;
    *) echo "error=$(echo "$1" | tail -n 2 | tr '\n' ' ' | cut -c1-200)" ;;
    esac
}

fsjob() {
    job=$1 dir=$2
    case $job in
    seqwrite) fsb_fio "$dir" seqwrite --rw=write --bs=1M --end_fsync=1 ;;
    seqread)
        fsb_drop_caches
        fsb_fio "$dir" seqread --rw=read --bs=1M
        ;;
    randread)
        fsb_drop_caches
        fsb_fio "$dir" randread --rw=randread --bs=4k --time_based --runtime="$FSB_RUNTIME"
        ;;
    meta) fsb_result "$(fsmeta meta "$dir" "$FSB_FILES" "$FSB_FILE_BYTES" 2>&1)" ;;
    untar)
        rm -rf "$dir/untar"
        mkdir -p "$dir/untar"
        fsb_drop_caches
        r=$(fsb_result "$(fsmeta time "$dir" tar -xf "$FSB_TAR" -C "$dir/untar" 2>&1)")
        echo "$r files=$(find "$dir/untar" -type f | wc -l)"
        ;;
    clean)
        rm -rf "$dir/fio.dat" "$dir/untar" "$dir/fsmeta"
        sync
        fstrim "$dir" >/dev/null 2>&1
        echo "ok=1"
        ;;
    *) echo "error=unknown job $job" ;;
    esac
}
