# shellcheck shell=sh
# The numbered records of the data-loss scenario (vmlet.test=records): the
# L2 guest writes them to its disk (tests/lab/guest/main), and the host side
# (tests/lab/scenarios.sh, scenario G) makes the same bytes to compare the
# disk image with. Sourced by both; POSIX sh and busybox awk.
#
# Record N is RECORD_SIZE (4096) bytes at byte offset N * 4096 of the disk:
# 8 sectors of 512 bytes, sector J being the 16-byte line
# "NNNNNN:J:CCCCCC\n" 32 times over, where CCCCCC is a hash of N and J. So a
# record that is missing (zeros), stale, written to the wrong place (another
# N, or a sector of the same record moved: another J), torn (some sectors
# not there) or corrupted never matches.
# shellcheck disable=SC2034 # used by the scripts that source this
RECORD_SIZE=4096

# records FIRST COUNT: records FIRST .. FIRST+COUNT-1, on stdout.
records() {
    awk -v first="$1" -v count="$2" 'BEGIN {
        for (n = first; n < first + count; n++) {
            h = (n * 2654435761) % 4294967296
            r = ""
            for (j = 0; j < 8; j++) {
                s = sprintf("%06d:%d:%06x\n", n, j, (h + j * 40503) % 16777216)
                s = s s; s = s s; s = s s; s = s s; s = s s   # 32 lines, 512 bytes
                r = r s
            }
            printf "%s", r
        }
    }'
}
