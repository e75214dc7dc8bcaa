/* A tiny AML byte-code builder (see aml.h for usage).
 *
 * Implements, from ACPI 6.4:
 *   20.2.2   Name objects encoding
 *   20.2.3   Data objects encoding
 *   20.2.4   Package length encoding
 *   20.2.5.1 Namespace modifier objects encoding (DefName, DefScope)
 *   20.2.5.2 Named objects encoding (DefDevice, DefMethod)
 *   20.2.5.3 Statement opcodes encoding (DefNotify)
 *   20.2.5.4 Expression opcodes encoding (DefBuffer, DefPackage)
 *   6.4.2.1  IRQ descriptor, 6.4.2.5 I/O port descriptor, 6.4.2.9 end tag
 *   6.4.3.4  32-bit fixed memory range descriptor
 *   6.4.3.5  Address space descriptors: 6.4.3.5.2 DWord, 6.4.3.5.3 Word
 *            (6.4.3.5.4 general and type-specific flags)
 *   6.4.3.6  Extended interrupt descriptor
 */
#include "x86/aml.h"

#include <string.h>

/* Opcodes (20.3, AML byte stream byte values). */
enum {
    AML_ZERO = 0x00,
    AML_ONE = 0x01,
    AML_NAME = 0x08,
    AML_BYTE = 0x0a,
    AML_WORD = 0x0b,
    AML_DWORD = 0x0c,
    AML_STRING = 0x0d,
    AML_QWORD = 0x0e,
    AML_METHOD = 0x14,
    AML_SCOPE = 0x10,
    AML_BUFFER = 0x11,
    AML_PACKAGE = 0x12,
    AML_DUAL_NAME = 0x2e,
    AML_MULTI_NAME = 0x2f,
    AML_EXT = 0x5b,
    AML_EXT_DEVICE = 0x82,
    AML_ROOT = 0x5c,   /* '\' */
    AML_PARENT = 0x5e, /* '^' */
    AML_NOTIFY = 0x86,
};

/* Small resource item tags: (type << 3) | length (6.4.2). */
enum {
    RES_IRQ_NOFLAGS = 0x22, /* type 4, 2 bytes: IRQ mask only */
    RES_IO = 0x47,          /* type 8, 7 bytes */
    RES_END = 0x79,         /* type 15, 1 byte: checksum */
};

/* Large resource items: tag, then a 16-bit length of what follows (6.4.3). */
enum {
    RES_MEMORY32_FIXED = 0x86,
    RES_DWORD_ADDRESS = 0x87,
    RES_WORD_ADDRESS = 0x88,
    RES_EXTENDED_IRQ = 0x89,
};
/* Extended interrupt descriptor flags (6.4.3.6). */
#define IRQ_CONSUMER 0x01
#define IRQ_EDGE     0x02 /* clear: level-triggered; polarity bit 2 clear: active-high */

/* Address space descriptor fields (6.4.3.5.4). */
enum {
    ADDR_TYPE_MEMORY = 0,
    ADDR_TYPE_IO = 1,
    ADDR_TYPE_BUS = 2,
};
#define ADDR_GF_CONSUMER   0x01 /* clear: ResourceProducer */
#define ADDR_GF_SUBTRACT   0x02 /* clear: PosDecode */
#define ADDR_GF_MIN_FIXED  0x04
#define ADDR_GF_MAX_FIXED  0x08
#define ADDR_IO_ENTIRE     0x03 /* _RNG: both ISA and non-ISA ranges */
#define ADDR_MEM_RW        0x01
#define ADDR_MEM_CACHEABLE 0x02 /* _MEM = 1 */

enum { BLK_PKGLEN, BLK_PACKAGE, BLK_BUFFER, BLK_RESOURCES, BLK_METHOD };

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->buf = buf;
    a->cap = buf ? cap : 0;
}

bool aml_ok(const struct aml *a)
{
    return !a->err && a->depth == 0;
}

static void emit(struct aml *a, const uint8_t *b, size_t n)
{
    if (a->err || n == 0)
        return;
    if (n > a->cap - a->len) {
        a->err = true;
        return;
    }
    memcpy(a->buf + a->len, b, n);
    a->len += n;
}

static void emit1(struct aml *a, uint8_t b)
{
    emit(a, &b, 1);
}

/* Inserts n bytes at offset at, shifting what follows: PkgLength and
 * buffer sizes are only known once the body is complete. */
static void insert(struct aml *a, size_t at, const uint8_t *b, size_t n)
{
    if (a->err)
        return;
    if (n > a->cap - a->len) {
        a->err = true;
        return;
    }
    memmove(a->buf + at + n, a->buf + at, a->len - at);
    memcpy(a->buf + at, b, n);
    a->len += n;
}

static struct aml_block *innermost(struct aml *a)
{
    return a->depth > 0 ? &a->open[a->depth - 1] : NULL;
}

/* Called after each complete data object so packages count their
 * elements themselves. */
static void element_done(struct aml *a)
{
    struct aml_block *b = innermost(a);
    if (b && b->kind == BLK_PACKAGE)
        b->nelems++;
}

static void open_block(struct aml *a, uint8_t kind)
{
    if (a->err)
        return;
    if (a->depth == AML_MAX_DEPTH) {
        a->err = true;
        return;
    }
    a->open[a->depth++] = (struct aml_block){ .start = a->len, .kind = kind };
}

int aml_pkglength(uint8_t out[4], size_t body_len)
{
    /* One byte holds up to 63 (6 bits); longer forms put the byte count
     * minus one in bits 7:6 of the lead byte, its low nibble in bits 3:0,
     * and the rest in following bytes, least significant first. */
    if (body_len + 1 <= 0x3f) {
        out[0] = (uint8_t)(body_len + 1);
        return 1;
    }
    for (int n = 2; n <= 4; n++) {
        size_t total = body_len + (size_t)n;
        if (total < ((size_t)1 << (4 + 8 * (n - 1)))) {
            out[0] = (uint8_t)((unsigned)(n - 1) << 6 | (total & 0x0f));
            for (int i = 1; i < n; i++)
                out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
            return n;
        }
    }
    return 0;
}

static bool is_lead_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_lead_char(c) || (c >= '0' && c <= '9');
}

/* NameString: optional '\' or '^'..., then dot-separated segments of up to
 * four characters, padded with '_' to exactly four. */
static void emit_namestring(struct aml *a, const char *path)
{
    uint8_t segs[255][4];
    unsigned nsegs = 0;
    const char *p = path;

    if (*p == '\\') {
        emit1(a, AML_ROOT);
        p++;
    } else {
        while (*p == '^') {
            emit1(a, AML_PARENT);
            p++;
        }
    }
    while (*p) {
        unsigned n = 0;
        if (nsegs == 255 || !is_lead_char(*p)) {
            a->err = true;
            return;
        }
        memset(segs[nsegs], '_', 4);
        while (is_name_char(*p)) {
            if (n == 4) {
                a->err = true;
                return;
            }
            segs[nsegs][n++] = (uint8_t)*p++;
        }
        nsegs++;
        if (*p == '.' && p[1] != '\0')
            p++;
        else if (*p != '\0') {
            a->err = true;
            return;
        }
    }

    if (nsegs == 0) {
        emit1(a, 0x00); /* NullName: the root itself, as in Scope(\) */
    } else if (nsegs == 2) {
        emit1(a, AML_DUAL_NAME);
    } else if (nsegs > 2) {
        emit1(a, AML_MULTI_NAME);
        emit1(a, (uint8_t)nsegs);
    }
    for (unsigned i = 0; i < nsegs; i++)
        emit(a, segs[i], 4);
}

void aml_name(struct aml *a, const char *path)
{
    emit1(a, AML_NAME);
    emit_namestring(a, path);
}

/* Integer without the package bookkeeping: also used for buffer sizes. */
static size_t encode_integer(uint8_t out[9], uint64_t v)
{
    size_t n;

    if (v == 0) {
        out[0] = AML_ZERO;
        return 1;
    }
    if (v == 1) {
        out[0] = AML_ONE;
        return 1;
    }
    /* OnesOp is avoided: its value depends on the table revision. */
    if (v <= 0xff) {
        out[0] = AML_BYTE;
        n = 1;
    } else if (v <= 0xffff) {
        out[0] = AML_WORD;
        n = 2;
    } else if (v <= 0xffffffffULL) {
        out[0] = AML_DWORD;
        n = 4;
    } else {
        out[0] = AML_QWORD;
        n = 8;
    }
    for (size_t i = 0; i < n; i++)
        out[1 + i] = (uint8_t)(v >> (8 * i));
    return 1 + n;
}

void aml_integer(struct aml *a, uint64_t v)
{
    uint8_t enc[9];
    emit(a, enc, encode_integer(enc, v));
    element_done(a);
}

void aml_string(struct aml *a, const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p > 0x7f) { /* AsciiCharList is 0x01..0x7F */
            a->err = true;
            return;
        }
    }
    emit1(a, AML_STRING);
    emit(a, (const uint8_t *)s, strlen(s) + 1);
    element_done(a);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
    /* Three letters packed as 5-bit values ('A' = 1) big-endian into two
     * bytes, then four hex digits as two bytes: the byte order of a
     * compressed EISA ID in a DWordConst. */
    uint8_t enc[5] = { AML_DWORD };
    int d[4];

    if (strlen(id) != 7) {
        a->err = true;
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z') {
            a->err = true;
            return;
        }
    }
    for (int i = 0; i < 4; i++) {
        d[i] = hexval(id[3 + i]);
        if (d[i] < 0) {
            a->err = true;
            return;
        }
    }
    unsigned vendor = ((unsigned)(id[0] - '@') << 10) | ((unsigned)(id[1] - '@') << 5) |
                      (unsigned)(id[2] - '@');
    enc[1] = (uint8_t)(vendor >> 8);
    enc[2] = (uint8_t)vendor;
    enc[3] = (uint8_t)((d[0] << 4) | d[1]);
    enc[4] = (uint8_t)((d[2] << 4) | d[3]);
    emit(a, enc, sizeof(enc));
    element_done(a);
}

void aml_scope_begin(struct aml *a, const char *path)
{
    emit1(a, AML_SCOPE);
    open_block(a, BLK_PKGLEN);
    emit_namestring(a, path);
}

void aml_device_begin(struct aml *a, const char *name)
{
    emit1(a, AML_EXT);
    emit1(a, AML_EXT_DEVICE);
    open_block(a, BLK_PKGLEN);
    emit_namestring(a, name);
}

void aml_package_begin(struct aml *a)
{
    emit1(a, AML_PACKAGE);
    open_block(a, BLK_PACKAGE);
    emit1(a, 0); /* NumElements, patched by aml_end() */
}

void aml_method_begin(struct aml *a, const char *name, unsigned nargs)
{
    if (nargs > 7) {
        a->err = true;
        return;
    }
    emit1(a, AML_METHOD);
    open_block(a, BLK_METHOD);
    emit_namestring(a, name);
    emit1(a, (uint8_t)nargs); /* MethodFlags: ArgCount, NotSerialized, SyncLevel 0 */
}

void aml_notify(struct aml *a, const char *path, uint64_t value)
{
    struct aml_block *b = innermost(a);
    if (!b || b->kind != BLK_METHOD) {
        a->err = true;
        return;
    }
    uint8_t enc[9];
    emit1(a, AML_NOTIFY);
    emit_namestring(a, path);
    emit(a, enc, encode_integer(enc, value));
}

void aml_resources_begin(struct aml *a)
{
    emit1(a, AML_BUFFER);
    open_block(a, BLK_RESOURCES);
}

void aml_buffer(struct aml *a, const uint8_t *data, size_t n)
{
    emit1(a, AML_BUFFER);
    open_block(a, BLK_BUFFER);
    emit(a, data, n);
    aml_end(a);
}

void aml_end(struct aml *a)
{
    uint8_t enc[9];
    struct aml_block *b = innermost(a);

    if (a->err)
        return;
    if (!b) {
        a->err = true;
        return;
    }
    if (b->kind == BLK_RESOURCES) {
        /* End tag; a zero checksum means "treat as valid" (6.4.2.9). */
        const uint8_t end[2] = { RES_END, 0x00 };
        emit(a, end, sizeof(end));
    }
    if (b->kind == BLK_BUFFER || b->kind == BLK_RESOURCES)
        insert(a, b->start, enc, encode_integer(enc, a->len - b->start));
    if (b->kind == BLK_PACKAGE) {
        if (b->nelems > 255) {
            a->err = true;
            return;
        }
        a->buf[b->start] = (uint8_t)b->nelems;
    }

    int n = aml_pkglength(enc, a->len - b->start);
    if (n == 0) {
        a->err = true;
        return;
    }
    insert(a, b->start, enc, (size_t)n);
    a->depth--;
    if (!a->err)
        element_done(a); /* a closed package or buffer is one element */
}

static bool in_resources(struct aml *a)
{
    struct aml_block *b = innermost(a);
    if (!b || b->kind != BLK_RESOURCES) {
        a->err = true;
        return false;
    }
    return true;
}

void aml_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    if (!in_resources(a))
        return;
    /* Information byte bit 0: the device decodes all 16 address bits. */
    const uint8_t d[8] = { RES_IO,       0x01,
                           (uint8_t)min, (uint8_t)(min >> 8),
                           (uint8_t)max, (uint8_t)(max >> 8),
                           align,        len };
    emit(a, d, sizeof(d));
}

void aml_irq_noflags(struct aml *a, uint16_t mask)
{
    if (!in_resources(a))
        return;
    /* The two-byte form: edge-triggered, active-high, exclusive. */
    const uint8_t d[3] = { RES_IRQ_NOFLAGS, (uint8_t)mask, (uint8_t)(mask >> 8) };
    emit(a, d, sizeof(d));
}

void aml_interrupt(struct aml *a, uint32_t gsi, bool edge)
{
    if (!in_resources(a))
        return;
    /* Flags, a table of one interrupt, then its number: 6 bytes. */
    const uint8_t d[9] = { RES_EXTENDED_IRQ,
                           6,
                           0,
                           (uint8_t)(IRQ_CONSUMER | (edge ? IRQ_EDGE : 0)),
                           1,
                           (uint8_t)gsi,
                           (uint8_t)(gsi >> 8),
                           (uint8_t)(gsi >> 16),
                           (uint8_t)(gsi >> 24) };
    emit(a, d, sizeof(d));
}

void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable)
{
    if (!in_resources(a))
        return;
    uint8_t d[12] = { RES_MEMORY32_FIXED, 9, 0, writable ? 1 : 0 };
    for (int i = 0; i < 4; i++) {
        d[4 + i] = (uint8_t)(base >> (8 * i));
        d[8 + i] = (uint8_t)(len >> (8 * i));
    }
    emit(a, d, sizeof(d));
}

/* Word address space descriptor with granularity and translation 0. */
static void word_address(struct aml *a, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
    if (!in_resources(a))
        return;
    if (max < min) {
        a->err = true;
        return;
    }
    uint16_t len = (uint16_t)(max - min + 1); /* 0 for the whole 64 KiB: not encodable */
    if (len == 0) {
        a->err = true;
        return;
    }
    const uint16_t f[5] = { 0, min, max, 0, len }; /* gran, min, max, tra, len */
    uint8_t d[16] = {
        RES_WORD_ADDRESS, 13, 0, type, ADDR_GF_MIN_FIXED | ADDR_GF_MAX_FIXED, tflags
    };
    for (int i = 0; i < 5; i++) {
        d[6 + 2 * i] = (uint8_t)f[i];
        d[7 + 2 * i] = (uint8_t)(f[i] >> 8);
    }
    emit(a, d, sizeof(d));
}

void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
    word_address(a, ADDR_TYPE_BUS, 0, min, max);
}

void aml_word_io(struct aml *a, uint16_t min, uint16_t max)
{
    word_address(a, ADDR_TYPE_IO, ADDR_IO_ENTIRE, min, max);
}

void aml_dword_memory(struct aml *a, uint32_t min, uint32_t max, bool cacheable)
{
    if (!in_resources(a))
        return;
    if (max < min || (max - min) == UINT32_MAX) {
        a->err = true;
        return;
    }
    const uint32_t f[5] = { 0, min, max, 0, max - min + 1 };
    uint8_t d[26] = { RES_DWORD_ADDRESS,
                      23,
                      0,
                      ADDR_TYPE_MEMORY,
                      ADDR_GF_MIN_FIXED | ADDR_GF_MAX_FIXED,
                      (uint8_t)(ADDR_MEM_RW | (cacheable ? ADDR_MEM_CACHEABLE : 0)) };
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            d[6 + 4 * i + j] = (uint8_t)(f[i] >> (8 * j));
    emit(a, d, sizeof(d));
}
