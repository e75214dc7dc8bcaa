/* virtio-blk, virtio 1.2 section 5.2:
 *   5.2.3    feature bits (SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH, DISCARD, WRITE_ZEROES, RO)
 *   5.2.4    configuration layout (up to write_zeroes_may_unmap)
 *   5.2.6    requests IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES;
 *   5.2.6.2  device requirements: RO refusal, unmap/unknown flags,
 *            write-zeroes reading back zeroes, stable writes when FLUSH
 *            is offered but not negotiated.
 *
 * Every request is checked before any I/O starts: a malformed request
 * gets VIRTIO_BLK_S_IOERR (or UNSUPP where 5.2.6.2 says so) and the device
 * carries on; a broken ring or chain (virtq_pop() == VIRTQ_BROKEN) sets
 * NEEDS_RESET and the queue is left alone until reset.
 *
 * Choices where the spec leaves room:
 *   - Read-only: OUT gets IOERR (5.2.6.2 MUST) and nothing is written.
 *     DISCARD and WRITE_ZEROES are then not offered, so, like any command
 *     whose feature was not negotiated, they get UNSUPP ("unsupported by
 *     device"). FLUSH succeeds (nothing to flush).
 *   - GET_ID with fewer than 20 data bytes gets the first bytes that fit.
 *   - Extra readable bytes after an IN header, or extra writable bytes
 *     before an OUT status, are ignored (framing is free, 2.7.4).
 *   - A chain with no writable byte cannot carry a status: it is returned
 *     with used length 0 and counted as a bad request. */
#include <errno.h>
#include <endian.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "backend/disk.h"
#include "error.h"
#include "virtio/blk.h"
#include "virtio/device.h"

#define BLK_HDR_SIZE     16
#define BLK_DWZ_SEG_SIZE 16
#define BLK_INLINE_IOV   8
/* A request never needs more disk operations than this... */
#define BLK_MAX_OPS      VIRTIO_BLK_MAX_DWZ_SEG
/* ...so a new chain is popped only while that many still fit. Every
 * request in flight holds at least one operation, so this also bounds
 * the requests in flight (and the host memory a guest can make us use). */
#define BLK_REQ_POOL     DISK_QUEUE_DEPTH

_Static_assert(VIRTQ_MAX_CHAIN <= IOV_MAX, "a chain's iovecs must fit one readv/writev");
_Static_assert(VIRTIO_BLK_QUEUE_SIZE <= VIRTQ_MAX_SIZE, "queue size");
/* A driver within size_max and seg_max never meets the total cap. */
_Static_assert((uint64_t)VIRTIO_BLK_SEG_MAX *VIRTIO_BLK_SIZE_MAX <= VIRTIO_BLK_MAX_REQUEST_BYTES,
               "SEG_MAX x SIZE_MAX must fit the per-request cap");
_Static_assert(VIRTIO_BLK_SIZE_MAX >= 4096 && VIRTIO_BLK_SIZE_MAX % VIRTIO_BLK_SECTOR == 0,
               "Linux refuses a max_segment_size below a page");

/* epoll tags */
#define TAG_DISK 0x100
#define TAG_STOP 0x200

struct blk_queue {
    struct virtq *vq;
    int kick_fd;
    bool broken;    /* driver broke it: not touched until reset */
    bool pushed;    /* used entries added since the last notify check */
    bool throttled; /* stopped popping for lack of room */
};

struct blk_req {
    struct blk_queue *bq; /* NULL in the synchronous path */
    uint16_t head;
    uint32_t type;     /* VIRTIO_BLK_T_*, or BLK_T_NONE without a header */
    uint64_t data_len; /* IN/OUT: bytes asked for */
    uint8_t *status;   /* the chain's last writable byte, or NULL */
    uint8_t result;
    uint64_t written; /* bytes written to the writable part before status */
    unsigned pending; /* disk operations in flight */
    /* IN/OUT: what is left to transfer (advanced on short transfers). */
    bool rw;
    struct disk_request rwreq;
    uint64_t remaining;
    struct iovec *iov; /* private copy of the data iovecs */
    unsigned iovcnt, iov_first;
    struct iovec iov_inline[BLK_INLINE_IOV];
    struct blk_req *next_free;
};

struct virtio_blk {
    struct virtio_device vdev; /* its thread waits on stop_fd, not stopping */
    struct disk *disk;
    uint64_t capacity; /* sectors */
    bool read_only;
    /* The image was swapped while no driver was running the device: tell
     * the next one once it is (lock held to set, thread clears). */
    bool config_news;
    char serial[VIRTIO_BLK_ID_BYTES]; /* NUL-padded, not terminated */
    uint8_t config[VIRTIO_BLK_CONFIG_SIZE];

    int epfd;

    /* Owned by the device thread while running. */
    uint64_t features;
    unsigned nq;
    struct blk_queue q[VIRTIO_MAX_QUEUES];
    struct virtq_chain *chain; /* pop scratch (16 KiB) */
    struct blk_req *pool, *free_reqs;

    struct virtio_blk_stats stats; /* relaxed atomics: read from any thread */
};
_Static_assert(offsetof(struct virtio_blk, vdev) == 0, "the device is its virtio_device");

#define BLK_T_NONE                UINT32_MAX
#define BLK_STAT_ADD(s, field, n) __atomic_fetch_add(&(s)->field, (uint64_t)(n), __ATOMIC_RELAXED)

/* Counts a finished request (its result is final). */
static void account(struct virtio_blk *blk, const struct blk_req *r)
{
    struct virtio_blk_stats *s = &blk->stats;
    if (!r->status) {
        BLK_STAT_ADD(s, malformed, 1); /* no room for a status */
        return;
    }
    bool ok = r->result == VIRTIO_BLK_S_OK;
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        BLK_STAT_ADD(s, read_requests, 1);
        if (ok)
            BLK_STAT_ADD(s, read_bytes, r->data_len);
        break;
    case VIRTIO_BLK_T_OUT:
        BLK_STAT_ADD(s, write_requests, 1);
        if (ok)
            BLK_STAT_ADD(s, write_bytes, r->data_len);
        break;
    case VIRTIO_BLK_T_FLUSH: BLK_STAT_ADD(s, flush_requests, 1); break;
    default: BLK_STAT_ADD(s, other_requests, 1); break;
    }
    if (r->result == VIRTIO_BLK_S_IOERR)
        BLK_STAT_ADD(s, errors, 1);
    else if (r->result == VIRTIO_BLK_S_UNSUPP)
        BLK_STAT_ADD(s, unsupported, 1);
}

void virtio_blk_get_stats(const struct virtio_blk *blk, struct virtio_blk_stats *out)
{
    const uint64_t *src = (const uint64_t *)&blk->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* ---- configuration space (5.2.4) -------------------------------------- */

static void build_config(struct virtio_blk *blk)
{
    uint8_t *c = blk->config;
    memset(c, 0, VIRTIO_BLK_CONFIG_SIZE); /* unused0/unused1 must be 0 */
    put_le64(c + 0, blk->capacity);
    put_le32(c + 8, VIRTIO_BLK_SIZE_MAX);
    put_le32(c + 12, VIRTIO_BLK_SEG_MAX);
    put_le32(c + 20, VIRTIO_BLK_SECTOR); /* blk_size */
    put_le16(c + 34, 1);                 /* num_queues (MQ not offered) */
    if (!blk->read_only) {
        put_le32(c + 36, VIRTIO_BLK_MAX_DWZ_SECTORS); /* max_discard_sectors */
        put_le32(c + 40, VIRTIO_BLK_MAX_DWZ_SEG);     /* max_discard_seg */
        put_le32(c + 44, 8);                          /* discard_sector_alignment: 4 KiB */
        put_le32(c + 48, VIRTIO_BLK_MAX_DWZ_SECTORS); /* max_write_zeroes_sectors */
        put_le32(c + 52, VIRTIO_BLK_MAX_DWZ_SEG);     /* max_write_zeroes_seg */
        c[56] = 1;                                    /* write_zeroes_may_unmap */
    }
}

static void blk_config_read(void *dev, size_t offset, uint8_t *data, size_t len)
{
    const struct virtio_blk *blk = dev;
    config_copy_out(blk->config, VIRTIO_BLK_CONFIG_SIZE, offset, data, len, 0);
}

static void blk_config_write(void *dev, size_t offset, const uint8_t *data, size_t len)
{
    /* Nothing is writable without CONFIG_WCE, which is not offered. */
    (void)dev;
    (void)offset;
    (void)data;
    (void)len;
}

/* ---- request parsing -------------------------------------------------- */

/* The byte holding the status: the last byte of the writable part. */
static uint8_t *status_byte(const struct iovec *wr, unsigned n)
{
    for (unsigned i = n; i-- > 0;)
        if (wr[i].iov_len)
            return (uint8_t *)wr[i].iov_base + wr[i].iov_len - 1;
    return NULL;
}

static bool range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t nsectors)
{
    return sector <= blk->capacity && nsectors <= blk->capacity - sector;
}

static unsigned fail(struct blk_req *req, uint8_t status)
{
    req->result = status;
    return 0;
}

/* The data segments of an IN/OUT request, as iov_slice() cut them,
 * against size_max where the driver negotiated it (blk.h). */
static bool segments_fit(uint64_t features, const struct iovec *seg, unsigned k)
{
    if (!(features & (1ull << VIRTIO_BLK_F_SIZE_MAX)))
        return true;
    for (unsigned i = 0; i < k; i++)
        if (seg[i].iov_len > VIRTIO_BLK_SIZE_MAX)
            return false;
    return true;
}

static void release_iov(struct blk_req *req)
{
    if (req->iov && req->iov != req->iov_inline)
        free(req->iov);
    req->iov = NULL;
}

/* IN and OUT: the data is the writable part before the status (IN) or
 * the readable part after the header (OUT). */
static unsigned parse_rw(struct virtio_blk *blk, uint64_t features, const struct virtq_chain *c,
                         bool write, uint64_t sector, struct blk_req *req, struct disk_request *op)
{
    if (write && blk->read_only)
        return fail(req, VIRTIO_BLK_S_IOERR); /* 5.2.6.2: and write nothing */
    const struct iovec *src = write ? c->iov : c->iov + c->n_out;
    unsigned n = write ? c->n_out : c->n_in;
    uint64_t off = write ? BLK_HDR_SIZE : 0;
    uint64_t len = write ? c->out_len - BLK_HDR_SIZE : c->in_len - 1;

    /* The bounds of blk.h first (they do not depend on the image size). */
    if (len % VIRTIO_BLK_SECTOR || len > VIRTIO_BLK_MAX_REQUEST_BYTES)
        return fail(req, VIRTIO_BLK_S_IOERR);
    unsigned k = iov_slice(src, n, off, len, NULL, UINT_MAX);
    bool seg_max = features & (1ull << VIRTIO_BLK_F_SEG_MAX);
    if ((seg_max && k > VIRTIO_BLK_SEG_MAX) || !range_ok(blk, sector, len / VIRTIO_BLK_SECTOR))
        return fail(req, VIRTIO_BLK_S_IOERR);
    if (len == 0)
        return 0; /* nothing to move: OK */

    req->iov = k <= BLK_INLINE_IOV ? req->iov_inline : malloc(k * sizeof *req->iov);
    if (!req->iov)
        return fail(req, VIRTIO_BLK_S_IOERR);
    iov_slice(src, n, off, len, req->iov, k);
    if (!segments_fit(features, req->iov, k)) {
        release_iov(req);
        return fail(req, VIRTIO_BLK_S_IOERR);
    }
    req->iovcnt = k;
    req->iov_first = 0;
    req->remaining = len;
    req->data_len = len;
    req->rw = true;
    /* If the driver did not take FLUSH, writes must be stable before they
     * complete (5.2.6.2, case 1): write through. */
    *op = (struct disk_request){ .op = write ? DISK_WRITE : DISK_READ,
                                 .iov = req->iov,
                                 .iovcnt = k,
                                 .offset = sector * VIRTIO_BLK_SECTOR,
                                 .sync = write && !(features & (1ull << VIRTIO_BLK_F_FLUSH)),
                                 .cookie = req };
    req->rwreq = *op;
    return 1;
}

/* DISCARD and WRITE_ZEROES: a list of 16-byte segments after the header.
 * All segments are checked before any is started. */
static unsigned parse_dwz(struct virtio_blk *blk, uint64_t features, const struct virtq_chain *c,
                          bool zeroes, struct blk_req *req, struct disk_request *ops)
{
    unsigned feature = zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD;
    if (blk->read_only || !(features & (1ull << feature)))
        return fail(req, VIRTIO_BLK_S_UNSUPP);
    uint64_t bytes = c->out_len - BLK_HDR_SIZE;
    if (bytes == 0 || bytes % BLK_DWZ_SEG_SIZE || bytes / BLK_DWZ_SEG_SIZE > VIRTIO_BLK_MAX_DWZ_SEG)
        return fail(req, VIRTIO_BLK_S_IOERR);
    unsigned nseg = (unsigned)(bytes / BLK_DWZ_SEG_SIZE), nops = 0;
    uint8_t seg[VIRTIO_BLK_MAX_DWZ_SEG * BLK_DWZ_SEG_SIZE];
    iov_to_buf(c->iov, c->n_out, BLK_HDR_SIZE, seg, bytes);

    for (unsigned i = 0; i < nseg; i++) {
        uint64_t sector;
        uint32_t num, flags;
        memcpy(&sector, seg + i * 16, 8);
        memcpy(&num, seg + i * 16 + 8, 4);
        memcpy(&flags, seg + i * 16 + 12, 4);
        sector = le64toh(sector);
        num = le32toh(num);
        flags = le32toh(flags);
        /* 5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP. */
        if ((flags & ~VIRTIO_BLK_WZ_FLAG_UNMAP) || (!zeroes && flags))
            return fail(req, VIRTIO_BLK_S_UNSUPP);
        if (num > VIRTIO_BLK_MAX_DWZ_SECTORS || !range_ok(blk, sector, num))
            return fail(req, VIRTIO_BLK_S_IOERR);
        if (num == 0)
            continue;
        ops[nops++] = (struct disk_request){ .op = zeroes ? DISK_WRITE_ZEROES : DISK_DISCARD,
                                             .offset = sector * VIRTIO_BLK_SECTOR,
                                             .length = (uint64_t)num * VIRTIO_BLK_SECTOR,
                                             .unmap = flags & VIRTIO_BLK_WZ_FLAG_UNMAP,
                                             .cookie = req };
    }
    return nops;
}

/* Reads the request in chain c into req. Returns how many disk
 * operations (in ops) it needs; 0 means req->result is already final. */
static unsigned parse_request(struct virtio_blk *blk, uint64_t features,
                              const struct virtq_chain *c, struct blk_req *req,
                              struct disk_request *ops)
{
    req->head = c->head;
    req->type = BLK_T_NONE;
    req->data_len = 0;
    req->result = VIRTIO_BLK_S_OK;
    req->written = 0;
    req->pending = 0;
    req->rw = false;
    req->iov = NULL;
    req->iovcnt = 0;
    req->status = status_byte(c->iov + c->n_out, c->n_in);
    if (!req->status)
        return 0;
    if (c->out_len < BLK_HDR_SIZE)
        return fail(req, VIRTIO_BLK_S_IOERR);

    uint8_t hdr[BLK_HDR_SIZE];
    iov_to_buf(c->iov, c->n_out, 0, hdr, sizeof hdr);
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    type = le32toh(type);
    sector = le64toh(sector);
    req->type = type;

    switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        return parse_rw(blk, features, c, type == VIRTIO_BLK_T_OUT, sector, req, ops);
    case VIRTIO_BLK_T_FLUSH:
        if (blk->read_only)
            return 0;
        ops[0] = (struct disk_request){ .op = DISK_FLUSH, .cookie = req };
        return 1;
    case VIRTIO_BLK_T_GET_ID: {
        /* Only the bytes before the status; never the status itself. */
        uint64_t room = c->in_len - 1;
        req->written = iov_from_buf(c->iov + c->n_out, c->n_in, 0, blk->serial,
                                    room < VIRTIO_BLK_ID_BYTES ? room : VIRTIO_BLK_ID_BYTES);
        return 0;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        return parse_dwz(blk, features, c, type == VIRTIO_BLK_T_WRITE_ZEROES, req, ops);
    default: return fail(req, VIRTIO_BLK_S_UNSUPP);
    }
}

/* Accounts one finished disk operation. Returns true when a read/write
 * came back short and the rest must be issued again (req->rwreq). */
static bool op_done(struct blk_req *req, int64_t res)
{
    if (res < 0) {
        req->result = VIRTIO_BLK_S_IOERR;
        return false;
    }
    if (!req->rw)
        return false;
    uint64_t got = (uint64_t)res < req->remaining ? (uint64_t)res : req->remaining;
    if (req->rwreq.op == DISK_READ)
        req->written += got;
    req->remaining -= got;
    if (!req->remaining)
        return false;
    if (got == 0) { /* end of file: the image shrank */
        req->result = VIRTIO_BLK_S_IOERR;
        return false;
    }
    /* Step over what was transferred. */
    req->rwreq.offset += got;
    while (got) {
        struct iovec *v = &req->iov[req->iov_first];
        uint64_t step = got < v->iov_len ? got : v->iov_len;
        v->iov_base = (uint8_t *)v->iov_base + step;
        v->iov_len -= step;
        got -= step;
        if (!v->iov_len)
            req->iov_first++;
    }
    req->rwreq.iov = req->iov + req->iov_first;
    req->rwreq.iovcnt = req->iovcnt - req->iov_first;
    return true;
}

static uint32_t used_len(const struct blk_req *req)
{
    if (!req->status)
        return 0;
    uint64_t n = req->written + 1;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* ---- synchronous path (tests, fuzzer) --------------------------------- */

int virtio_blk_process_chain_sync(struct virtio_blk *blk, uint64_t features, struct virtq *q,
                                  const struct virtq_chain *chain)
{
    struct blk_req req;
    struct disk_request ops[BLK_MAX_OPS];
    req.bq = NULL;
    unsigned n = parse_request(blk, features, chain, &req, ops);
    for (unsigned i = 0; i < n; i++) {
        struct disk_request op = ops[i];
        while (op_done(&req, disk_execute(blk->disk, &op)))
            op = req.rwreq;
    }
    release_iov(&req);
    account(blk, &req);
    if (req.status)
        *req.status = req.result;
    virtq_push(q, req.head, used_len(&req));
    return req.status ? req.result : -1;
}

/* ---- the device thread ------------------------------------------------- */

static struct blk_req *req_alloc(struct virtio_blk *blk)
{
    struct blk_req *r = blk->free_reqs;
    if (r)
        blk->free_reqs = r->next_free;
    return r;
}

static void req_free(struct virtio_blk *blk, struct blk_req *r)
{
    release_iov(r);
    r->next_free = blk->free_reqs;
    blk->free_reqs = r;
}

/* Writes the status and returns the chain, unless the driver broke the
 * queue meanwhile (then the queue is not touched again until reset). */
static void req_finish(struct virtio_blk *blk, struct blk_req *r)
{
    struct blk_queue *bq = r->bq;
    account(blk, r);
    if (!bq->broken) {
        if (r->status)
            *r->status = r->result;
        virtq_push(bq->vq, r->head, used_len(r)); /* release-publishes the status */
        bq->pushed = true;
    }
    req_free(blk, r);
}

/* Room for one more request of the largest kind. */
static bool have_room(const struct virtio_blk *blk)
{
    return disk_in_flight(blk->disk) + BLK_MAX_OPS <= DISK_QUEUE_DEPTH && blk->free_reqs;
}

static void start_request(struct virtio_blk *blk, struct blk_queue *bq)
{
    struct blk_req *r = req_alloc(blk); /* have_room() said there is one */
    struct disk_request ops[BLK_MAX_OPS];
    r->bq = bq;
    unsigned n = parse_request(blk, blk->features, blk->chain, r, ops);
    for (unsigned i = 0; i < n; i++) {
        if (disk_submit(blk->disk, &ops[i]) == 0)
            r->pending++;
        else
            r->result = VIRTIO_BLK_S_IOERR;
    }
    if (!r->pending)
        req_finish(blk, r);
}

static void process_queue(struct virtio_blk *blk, unsigned i)
{
    struct blk_queue *bq = &blk->q[i];
    if (!bq->vq || bq->broken)
        return;
    for (;;) {
        /* Kicks are not needed while we are popping anyway. */
        virtq_disable_notify(bq->vq);
        while (have_room(blk)) {
            enum virtq_pop_result r = virtq_pop(bq->vq, blk->chain);
            if (r == VIRTQ_EMPTY)
                break;
            if (r == VIRTQ_BROKEN) {
                bq->broken = true;
                virtio_set_needs_reset(blk->vdev.transport);
                return;
            }
            start_request(blk, bq);
        }
        if (!have_room(blk)) {
            /* Notifications stay off; completions call us again. */
            bq->throttled = true;
            return;
        }
        bq->throttled = false;
        /* Re-enable, then look once more: a chain added between the last
         * pop and the enable would otherwise wait for a kick never sent. */
        if (!virtq_enable_notify(bq->vq))
            return;
    }
}

static bool stop_requested(const struct virtio_blk *blk)
{
    return atomic_load(&blk->vdev.thread.stopping);
}

static void reap_completions(struct virtio_blk *blk)
{
    struct disk_completion c[64];
    unsigned n;
    while ((n = disk_reap(blk->disk, c, 64)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            struct blk_req *r = c[i].cookie;
            if (op_done(r, c[i].result)) {
                /* The rest of a short transfer, unless we are stopping:
                 * a stop waits for what is in flight, so nothing new. */
                if ((!stop_requested(blk) || blk->vdev.quiescing) &&
                    disk_submit(blk->disk, &r->rwreq) == 0)
                    continue;
                r->result = VIRTIO_BLK_S_IOERR;
            }
            if (--r->pending == 0)
                req_finish(blk, r);
        }
    }
}

/* After a stop: completions only free their requests. */
static void drop_completions(struct virtio_blk *blk)
{
    struct disk_completion c[64];
    unsigned n;
    while ((n = disk_reap(blk->disk, c, 64)) > 0)
        for (unsigned i = 0; i < n; i++) {
            struct blk_req *r = c[i].cookie;
            if (--r->pending == 0)
                req_free(blk, r);
        }
}

static void notify_queues(struct virtio_blk *blk)
{
    for (unsigned i = 0; i < blk->nq; i++) {
        struct blk_queue *bq = &blk->q[i];
        if (!bq->pushed || bq->broken)
            continue;
        bq->pushed = false;
        if (virtq_should_notify(bq->vq))
            virtio_notify_queue(blk->vdev.transport, i);
    }
}

static void *blk_thread(void *arg)
{
    struct virtio_blk *blk = arg;
    pthread_setname_np(pthread_self(), "virtio-blk");
    /* A swap happened while no driver ran us: the driver that just
     * started may have read the capacity while it changed, so it reads
     * it again. */
    if (blk->config_news) {
        blk->config_news = false;
        virtio_notify_config(blk->vdev.transport);
    }
    /* Buffers may have been made available before the first kick reached
     * our epoll set. */
    for (unsigned i = 0; i < blk->nq; i++)
        process_queue(blk, i);
    disk_kick(blk->disk);
    notify_queues(blk);

    for (;;) {
        struct epoll_event ev[8];
        int n = epoll_wait(blk->epfd, ev, 8, -1);
        if (n < 0)
            continue; /* EINTR */
        if (stop_requested(blk))
            break; /* before popping or resubmitting anything more */
        bool stop = false;
        for (int k = 0; k < n; k++) {
            uint32_t tag = ev[k].data.u32;
            if (tag == TAG_STOP) {
                stop = true;
            } else if (tag == TAG_DISK) {
                eventfd_drain(disk_event_fd(blk->disk));
                reap_completions(blk);
            } else if (tag < blk->nq) {
                eventfd_drain(blk->q[tag].kick_fd);
                process_queue(blk, tag);
            }
        }
        if (stop)
            break;
        for (unsigned i = 0; i < blk->nq; i++)
            if (blk->q[i].throttled && have_room(blk))
                process_queue(blk, i);
        disk_kick(blk->disk);
        notify_queues(blk);
    }

    /* A stop for a snapshot: pop nothing more, finish what is in flight
     * and complete it to the driver, so that no request is half done in
     * the saved guest memory and every chain taken is in the used ring. */
    if (blk->vdev.quiescing) {
        while (disk_in_flight(blk->disk)) {
            disk_wait(blk->disk);
            reap_completions(blk);
            disk_kick(blk->disk);
        }
        notify_queues(blk);
        return NULL;
    }
    /* Reset: pop nothing more and cancel what is in flight. A
     * request the kernel already works on cannot be cancelled (one is at
     * most 4 MiB: blk.h), and the kernel may still be reading from or
     * writing into guest memory until its completion arrives, so wait for
     * every completion. The driver reset the device (or the VM is going
     * away): its queues are gone, so no chain is returned, no status
     * written and no interrupt sent. */
    disk_cancel_all(blk->disk);
    while (disk_in_flight(blk->disk)) {
        disk_wait(blk->disk);
        drop_completions(blk);
    }
    return NULL;
}

/* Takes the kick fds out of the epoll set: the thread ended, or never
 * started. A queue whose fd was never added just fails quietly. */
static void blk_release_queues(void *dev)
{
    struct virtio_blk *blk = dev;
    for (unsigned i = 0; i < blk->nq; i++)
        if (blk->q[i].vq && blk->q[i].kick_fd >= 0)
            epoll_ctl(blk->epfd, EPOLL_CTL_DEL, blk->q[i].kick_fd, NULL);
}

/* Activation (lock held, thread not running): the enabled queues' kick
 * fds join the epoll set. */
static int blk_take_queues(void *dev, const struct virtio_queues *queues)
{
    struct virtio_blk *blk = dev;
    unsigned max = blk->vdev.ops.num_queues;
    blk->features = queues->features;
    blk->nq = queues->count < max ? queues->count : max;
    for (unsigned i = 0; i < blk->nq; i++)
        blk->q[i] = (struct blk_queue){ .vq = queues->q[i], .kick_fd = queues->kick_fd[i] };
    for (unsigned i = 0; i < blk->nq; i++) {
        if (!blk->q[i].vq || blk->q[i].kick_fd < 0)
            continue; /* queue not enabled: not served */
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
        if (epoll_ctl(blk->epfd, EPOLL_CTL_ADD, blk->q[i].kick_fd, &ev) < 0)
            return -1;
    }
    return 0;
}

static void blk_metrics(void *dev, virtio_metric_fn fn, void *opaque)
{
    struct virtio_blk_stats s;
    virtio_blk_get_stats(dev, &s);
    fn(opaque, "read_requests", s.read_requests);
    fn(opaque, "read_bytes", s.read_bytes);
    fn(opaque, "write_requests", s.write_requests);
    fn(opaque, "write_bytes", s.write_bytes);
    fn(opaque, "flush_requests", s.flush_requests);
    fn(opaque, "other_requests", s.other_requests);
    fn(opaque, "errors", s.errors);
    fn(opaque, "unsupported", s.unsupported);
    fn(opaque, "malformed", s.malformed);
}

static void blk_free(void *dev)
{
    virtio_blk_free(dev);
}

/* The disk thread: io_uring, and the synchronous calls of the fallback
 * path (src/backend/disk.c). */
/* Snapshots: the image's size when saved. A disk that changed size since
 * is refused: the guest's file systems would not match it. */
static int blk_save(void *dev, uint8_t *buf, size_t cap)
{
    struct virtio_blk *blk = dev;
    if (cap < 8)
        return -1;
    put_le64(buf, disk_size(blk->disk));
    return 8;
}

static int blk_load(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    struct virtio_blk *blk = dev;
    if (len != 8) {
        snprintf(why, whylen, "disk state of %zu bytes, not 8", len);
        return -1;
    }
    uint64_t saved = get_le64(buf);
    uint64_t now = disk_size(blk->disk);
    if (saved != now) {
        snprintf(why, whylen,
                 "its image %s has %llu bytes, but had %llu when the snapshot was taken; "
                 "restore with the disk as it was",
                 disk_path(blk->disk), (unsigned long long)now, (unsigned long long)saved);
        return -1;
    }
    return 0;
}

static const int blk_syscalls[] = {
    __NR_io_uring_enter, __NR_preadv,    __NR_pwritev, __NR_pwritev2,  __NR_pread64,
    __NR_pwrite64,       __NR_fdatasync, __NR_fsync,   __NR_fallocate,
};
static const struct sandbox_rules blk_rules = {
    .kind = "virtio-blk",
    .syscalls = blk_syscalls,
    .nsyscalls = sizeof blk_syscalls / sizeof blk_syscalls[0],
};

static const struct virtio_device_hooks blk_hooks = {
    .sandbox = &blk_rules,
    .thread_fn = blk_thread,
    .take_queues = blk_take_queues,
    .release_queues = blk_release_queues,
};

/* ---- construction ------------------------------------------------------ */

struct virtio_blk *virtio_blk_new(const char *path, bool read_only, const char *serial,
                                  vmlet_error *err)
{
    size_t slen = serial ? strlen(serial) : 0;
    if (slen > VIRTIO_BLK_ID_BYTES) {
        set_error(err, VMLET_ERR_INVALID,
                  "disk '%s': serial '%s' is longer than %d characters; shorten it", path, serial,
                  VIRTIO_BLK_ID_BYTES);
        return NULL;
    }
    for (size_t i = 0; i < slen; i++)
        if (serial[i] < 0x20 || serial[i] > 0x7e) {
            set_error(err, VMLET_ERR_INVALID,
                      "disk '%s': serial must be printable ASCII; change it", path);
            return NULL;
        }

    uint64_t f = (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
                 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
    if (read_only)
        f |= 1ull << VIRTIO_BLK_F_RO;
    else
        f |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
    const struct virtio_device_ops ops = {
        .name = "disk",
        .device_id = VIRTIO_ID_BLOCK,
        .num_queues = 1,
        .queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
        .features = f,
        .config_size = VIRTIO_BLK_CONFIG_SIZE,
        .config_read = blk_config_read,
        .config_write = blk_config_write,
        .free = blk_free,
        .metrics = blk_metrics,
        .save = blk_save,
        .load = blk_load,
    };
    struct virtio_blk *blk = virtio_device_new(sizeof *blk, &ops, &blk_hooks, err);
    if (!blk)
        return NULL;
    blk->epfd = -1;
    if (disk_open(&blk->disk, path, read_only, err) < 0) {
        virtio_blk_free(blk);
        return NULL;
    }
    blk->read_only = read_only;
    blk->capacity = disk_size(blk->disk) / VIRTIO_BLK_SECTOR;
    if (serial)
        memcpy(blk->serial, serial, slen); /* NUL-padded by calloc */
    build_config(blk);

    blk->chain = malloc(sizeof *blk->chain);
    blk->pool = calloc(BLK_REQ_POOL, sizeof *blk->pool);
    blk->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev_stop = { .events = EPOLLIN, .data.u32 = TAG_STOP };
    struct epoll_event ev_disk = { .events = EPOLLIN, .data.u32 = TAG_DISK };
    if (!blk->chain || !blk->pool || blk->epfd < 0 ||
        epoll_ctl(blk->epfd, EPOLL_CTL_ADD, blk->vdev.thread.stop_fd, &ev_stop) < 0 ||
        epoll_ctl(blk->epfd, EPOLL_CTL_ADD, disk_event_fd(blk->disk), &ev_disk) < 0) {
        set_error(err, VMLET_ERR_HOST, "disk '%s': cannot set up the device thread: %s", path,
                  strerror(errno));
        virtio_blk_free(blk);
        return NULL;
    }
    for (unsigned i = 0; i < BLK_REQ_POOL; i++)
        req_free(blk, &blk->pool[i]);
    return blk;
}

void virtio_blk_free(struct virtio_blk *blk)
{
    if (!blk)
        return;
    virtio_device_destroy(&blk->vdev); /* stops the thread first */
    disk_close(blk->disk);
    if (blk->epfd >= 0)
        close(blk->epfd);
    free(blk->chain);
    free(blk->pool);
    free(blk);
}

/* ---- a new image for a running disk ------------------------------------ */

int virtio_blk_set_path(struct virtio_blk *blk, const char *path, vmlet_error *err)
{
    /* Opened here, in the caller's thread (the device thread's sandbox
     * opens nothing), before the device stops: a bad path costs the
     * guest nothing. */
    struct disk_file f = { .fd = -1 };
    if (disk_file_open(&f, path, blk->read_only, blk->disk, err) < 0)
        return -1;

    struct virtio_device *d = &blk->vdev;
    pthread_mutex_lock(&d->lock);
    struct virtio_transport *t = d->transport;
    bool running = d->thread.running;
    /* Stop as for a snapshot: pop nothing more, finish every request in
     * flight on the old image and complete it to the driver. The queues
     * stay as they are (kick fds in the epoll set, chains not yet popped
     * in the ring) for the thread to go on with. */
    if (running) {
        d->quiescing = true;
        device_thread_stop(&d->thread);
        d->quiescing = false;
    }
    int rc = disk_swap_file(blk->disk, &f, path);
    if (rc == 0) {
        /* The config image changes under a driver that may be reading it
         * (capacity is two 32-bit reads). The interrupt below comes after
         * the change and the generation's move, so the read the driver
         * makes for it sees the new value whole. */
        blk->capacity = disk_size(blk->disk) / VIRTIO_BLK_SECTOR;
        put_le64(blk->config, blk->capacity); /* nothing else in it moves */
        if (!running)
            blk->config_news = true;
    }
    if (running)
        device_thread_start(&d->thread, blk_thread, blk); /* cannot fail: spawned */
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        disk_file_close(&f);
        return set_error(err, rc == -ENOMEM ? VMLET_ERR_NOMEM : VMLET_ERR_INTERNAL,
                         "disk '%s': cannot swap the image: %s", path, strerror(-rc));
    }
    if (running)
        virtio_notify_config(t); /* ISR bit 1 and the config vector */
    return 0;
}

struct disk *virtio_blk_disk(struct virtio_blk *blk)
{
    return blk->disk;
}

struct virtio_blk *virtio_blk_of(struct virtio_device *d)
{
    return d && d->ops.device_id == VIRTIO_ID_BLOCK ? (struct virtio_blk *)d : NULL;
}

struct virtio_device *virtio_blk_device(struct virtio_blk *blk)
{
    return blk ? &blk->vdev : NULL;
}

uint64_t virtio_blk_capacity(const struct virtio_blk *blk)
{
    return blk->capacity;
}
