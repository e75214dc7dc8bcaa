/* i8042 keyboard controller, per the IBM PC/AT Technical Reference
 * ("Keyboard Controller": status register, command byte, commands 20h-FFh)
 * and the de-facto PS/2 additions (A7h-A9h, D2h-D4h).
 *
 * There is no keyboard and no mouse, and no IRQ 1/12. What remains:
 *  - the reset line: command FEh (any even F0h-FEh pulses output port bit
 *    0), or D1h writing output port bit 0 = 0 -> GUEST_REQUEST_REBOOT;
 *  - a status register that never shows the input buffer busy, so reboot
 *    code polling it never spins;
 *  - answers for the commands Linux's i8042 probe waits on (20h, 60h, AAh,
 *    D3h, A9h), chosen so that it finds no AUX port at once and no
 *    keyboard (its writes to the keyboard are never answered).
 *
 * on_request is called without the internal mutex held.
 */
#include "dev/i8042.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STS_OBF     0x01 /* output buffer full */
#define STS_SYS     0x04 /* system flag (mirrors command byte bit 2) */
#define STS_CMD     0x08 /* last write went to port 64h */
#define STS_UNLOCK  0x10 /* keyboard not inhibited by the keylock */
#define STS_AUXDATA 0x20 /* output byte came from the AUX port */

#define CTR_SYS    0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20

#define OUTP_RESET 0x01 /* output port bit 0: CPU reset, active low */

struct i8042 {
    pthread_mutex_t lock;
    void (*on_request)(void *opaque, enum guest_request);
    void *opaque;
    uint8_t ctr; /* command byte */
    uint8_t out_port;
    uint8_t obuf; /* last byte placed in the output buffer */
    bool obf;
    bool last_cmd;
    uint8_t pending; /* command waiting for its data byte, or 0 */
};

static void respond(struct i8042 *k, uint8_t v)
{
    k->obuf = v;
    k->obf = true;
}

/* Returns true if the command pulses the reset line. */
static bool command(struct i8042 *k, uint8_t cmd)
{
    k->pending = 0;
    if (cmd >= 0x20 && cmd <= 0x3f) { /* read controller RAM */
        respond(k, cmd == 0x20 ? k->ctr : 0);
        return false;
    }
    if (cmd >= 0x60 && cmd <= 0x7f) { /* write controller RAM */
        k->pending = cmd;
        return false;
    }
    if (cmd >= 0xf0) /* pulse output lines (low = pulse) */
        return !(cmd & OUTP_RESET);
    switch (cmd) {
    case 0xa7: k->ctr |= CTR_AUXDIS; break;
    case 0xa8: k->ctr &= ~CTR_AUXDIS; break;
    case 0xa9: respond(k, 0x02); break; /* AUX test: clock stuck high */
    case 0xaa:
        respond(k, 0x55);
        k->ctr |= CTR_SYS;
        break;                          /* self-test ok */
    case 0xab: respond(k, 0x00); break; /* keyboard interface ok */
    case 0xad: k->ctr |= CTR_KBDDIS; break;
    case 0xae: k->ctr &= ~CTR_KBDDIS; break;
    case 0xd0: respond(k, k->out_port); break;
    case 0xd1:
    case 0xd2:
    case 0xd3:
    case 0xd4: k->pending = cmd; break;
    default: break; /* accepted, ignored */
    }
    return false;
}

/* Returns true if the byte pulses the reset line. */
static bool data_write(struct i8042 *k, uint8_t v)
{
    uint8_t cmd = k->pending;
    k->pending = 0;
    switch (cmd) {
    case 0x60: k->ctr = v; break;
    case 0xd1: k->out_port = v; return !(v & OUTP_RESET);
    case 0xd2: respond(k, v); break;
    case 0xd3:
        /* No AUX port: the byte comes back on the keyboard side, which
         * Linux's AUX loopback check rejects at once (no timeout). */
        respond(k, v);
        break;
    default: break; /* to the keyboard or mouse: nobody is there */
    }
    return false;
}

void i8042_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct i8042 *k = opaque;
    if (!data || len == 0)
        return;
    if (len != 1 || (offset != 0 && offset != 4)) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }

    bool reset = false;
    pthread_mutex_lock(&k->lock);
    if (offset == 4) {
        if (is_write) {
            k->last_cmd = true;
            reset = command(k, data[0]);
        } else {
            data[0] = (k->obf ? STS_OBF : 0) | (k->ctr & CTR_SYS ? STS_SYS : 0) |
                      (k->last_cmd ? STS_CMD : 0) | STS_UNLOCK;
        }
    } else {
        if (is_write) {
            k->last_cmd = false;
            reset = data_write(k, data[0]);
        } else {
            data[0] = k->obuf; /* stays readable, like the real latch */
            k->obf = false;
        }
    }
    pthread_mutex_unlock(&k->lock);

    if (reset && k->on_request)
        k->on_request(k->opaque, GUEST_REQUEST_REBOOT);
}

struct i8042 *i8042_new(void (*on_request)(void *opaque, enum guest_request), void *opaque)
{
    struct i8042 *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        free(k);
        return NULL;
    }
    k->on_request = on_request;
    k->opaque = opaque;
    /* As firmware leaves it: translation on, POST passed, keyboard
     * interrupt on, AUX disabled. A20 on and reset inactive. */
    k->ctr = 0x40 | CTR_AUXDIS | CTR_SYS | 0x01;
    k->out_port = 0x02 | OUTP_RESET;
    return k;
}

void i8042_free(struct i8042 *k)
{
    if (!k)
        return;
    pthread_mutex_destroy(&k->lock);
    free(k);
}

void i8042_save(struct i8042 *k, struct i8042_state *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&k->lock);
    st->ctr = k->ctr;
    st->out_port = k->out_port;
    st->obuf = k->obuf;
    st->obf = k->obf;
    st->last_cmd = k->last_cmd;
    st->pending = k->pending;
    pthread_mutex_unlock(&k->lock);
}

int i8042_restore(struct i8042 *k, const struct i8042_state *st)
{
    if (st->obf > 1 || st->last_cmd > 1)
        return -1;
    pthread_mutex_lock(&k->lock);
    k->ctr = st->ctr;
    k->out_port = st->out_port;
    k->obuf = st->obuf;
    k->obf = st->obf;
    k->last_cmd = st->last_cmd;
    k->pending = st->pending;
    pthread_mutex_unlock(&k->lock);
    return 0;
}
