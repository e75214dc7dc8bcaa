/* libFuzzer target for the flow cap's look at guest frames
 * (src/backend/flowcap.c): any bytes as the Ethernet frame the guest sent.
 * Build with clang -fsanitize=fuzzer,address,undefined, or with
 * -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * Every call gets a heap copy of exactly the bytes it may read, so ASan
 * reports any read past len. Besides memory errors it checks what
 * flowcap.h promises:
 *   - a frame that is not IPv4 by its Ethernet type opens nothing;
 *   - an IPv4 frame too short for its IPv4 header may open (is refused at
 *     the cap);
 *   - a UDP answer names the source address and port written in the frame;
 *   - nothing past the bytes it says it reads matters: the frame cut just
 *     after them, or with every later byte flipped, gets the same answer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_flow_frame"
#include "fuzz_util.h"
#include "backend/flowcap.h"

static struct net_flow_frame classify(const uint8_t *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    check(copy != NULL, "out of memory");
    memcpy(copy, data, len);
    struct net_flow_frame r = net_flow_frame(copy, len);
    free(copy);
    return r;
}

static bool same(struct net_flow_frame a, struct net_flow_frame b)
{
    return a.may_open == b.may_open && a.udp == b.udp && a.src == b.src && a.sport == b.sport;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct net_flow_frame r = classify(data, size);
    bool ipv4 = size >= 14 && data[12] == 0x08 && data[13] == 0x00;
    if (!ipv4) {
        check(!r.may_open && !r.udp, "a frame that is not IPv4 may open a flow");
        return 0;
    }
    if (size < 34)
        check(r.may_open && !r.udp, "a runt IPv4 frame passes");
    if (r.udp) {
        size_t l4 = 14 + (size_t)(data[14] & 15) * 4;
        check(l4 + 4 <= size, "UDP without its ports");
        uint32_t src = (uint32_t)data[26] << 24 | (uint32_t)data[27] << 16 |
                       (uint32_t)data[28] << 8 | data[29];
        check(r.src == src && r.sport == (uint16_t)(data[l4] << 8 | data[l4 + 1]),
              "UDP source not the frame's");
    }
    /* What it reads ends 14 bytes into the next header at the latest. */
    size_t end = 14 + (size >= 15 ? (size_t)(data[14] & 15) * 4 : 0) + 14;
    if (end < size) {
        check(same(r, classify(data, end)), "the answer depends on bytes it does not read");
        uint8_t *flipped = malloc(size);
        check(flipped != NULL, "out of memory");
        memcpy(flipped, data, size);
        for (size_t i = end; i < size; i++)
            flipped[i] ^= 0xff;
        check(same(r, classify(flipped, size)), "the answer depends on bytes it does not read");
        free(flipped);
    }
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
