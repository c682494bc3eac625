/* serial.c — COBS + CRC-32 framing and the serial link (see sprig/ns_serial.h). */
#include <stddef.h>
#include <string.h>

#include "sprig/ns_serial.h"

/* ---- decoder ------------------------------------------------------------------------------ */

void sprig_ns_cobs_dec_reset(sprig_ns_cobs_dec *d)
{
    d->len = 0;
    d->code = 0;
    d->left = 0;
    d->pending_zero = false;
    d->started = false;
    d->discard = false;
}

void sprig_ns_cobs_dec_init(sprig_ns_cobs_dec *d, size_t min_len)
{
    memset(d, 0, sizeof(*d));
    d->min_len = min_len;
}

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static sprig_ns_cobs_result end_frame(sprig_ns_cobs_dec *d, const uint8_t *out, size_t *len)
{
    sprig_ns_cobs_result r = SPRIG_NS_COBS_ERROR;
    if (d->left != 0 || d->len < d->min_len + SPRIG_NS_SERIAL_CRC_LEN) {
        d->stats.framing_errors++;
    } else {
        size_t n = d->len - SPRIG_NS_SERIAL_CRC_LEN;
        if (sprig_ns_crc32(0, out, n) == rd32le(out + n)) {
            d->stats.frames++;
            *len = n;
            r = SPRIG_NS_COBS_FRAME;
        } else {
            d->stats.crc_errors++;
        }
    }
    sprig_ns_cobs_dec_reset(d);
    return r;
}

static sprig_ns_cobs_result overrun(sprig_ns_cobs_dec *d)
{
    d->stats.overruns++;
    d->discard = true;
    return SPRIG_NS_COBS_ERROR;
}

sprig_ns_cobs_result sprig_ns_cobs_dec_byte(sprig_ns_cobs_dec *d, uint8_t byte, uint8_t *out,
                                            size_t cap, size_t *len)
{
    if (byte == 0) {
        if (d->discard || !d->started) {
            sprig_ns_cobs_dec_reset(d);
            return SPRIG_NS_COBS_MORE;
        }
        return end_frame(d, out, len);
    }
    if (d->discard) {
        return SPRIG_NS_COBS_MORE;
    }
    d->started = true;
    if (d->left == 0) { /* a code byte */
        if (d->pending_zero) {
            if (d->len >= cap) {
                return overrun(d);
            }
            out[d->len++] = 0;
            d->pending_zero = false;
        }
        d->code = byte;
        d->left = (uint8_t)(byte - 1u);
        d->pending_zero = d->left == 0 && byte != 0xFFu;
        return SPRIG_NS_COBS_MORE;
    }
    if (d->len >= cap) {
        return overrun(d);
    }
    out[d->len++] = byte;
    d->left--;
    d->pending_zero = d->left == 0 && d->code != 0xFFu;
    return SPRIG_NS_COBS_MORE;
}

/* ---- encoder ------------------------------------------------------------------------------ */

enum { ENC_LEAD, ENC_CODE, ENC_DATA, ENC_END, ENC_DONE };

static uint8_t src_at(const sprig_ns_cobs_enc *e, size_t i)
{
    return i < e->n ? e->data[i] : e->crc[i - e->n];
}

void sprig_ns_cobs_enc_start(sprig_ns_cobs_enc *e, const uint8_t *data, size_t n, bool lead)
{
    uint32_t crc = sprig_ns_crc32(0, data, n);
    e->data = data;
    e->n = n;
    e->pos = 0;
    e->blk_end = 0;
    for (size_t i = 0; i < SPRIG_NS_SERIAL_CRC_LEN; i++) {
        e->crc[i] = (uint8_t)(crc >> (8 * i));
    }
    e->state = lead ? ENC_LEAD : ENC_CODE;
    e->full = false;
}

size_t sprig_ns_cobs_enc_max(size_t n)
{
    size_t src = n + SPRIG_NS_SERIAL_CRC_LEN;
    return src + (src + 1 + 253) / 254 + 2;
}

size_t sprig_ns_cobs_enc_fill(sprig_ns_cobs_enc *e, uint8_t *out, size_t cap)
{
    size_t total = e->n + SPRIG_NS_SERIAL_CRC_LEN;
    size_t k = 0;
    while (k < cap && e->state != ENC_DONE) {
        switch (e->state) {
        case ENC_LEAD:
            out[k++] = 0;
            e->state = ENC_CODE;
            break;
        case ENC_CODE: {
            if (e->pos > total) {
                e->state = ENC_END;
                break;
            }
            size_t j = e->pos;
            while (j < total && j - e->pos < 254 && src_at(e, j) != 0) {
                j++;
            }
            e->blk_end = j;
            e->full = j - e->pos == 254;
            out[k++] = (uint8_t)(j - e->pos + 1);
            e->state = ENC_DATA;
            break;
        }
        case ENC_DATA:
            if (e->pos < e->blk_end) {
                out[k++] = src_at(e, e->pos++);
            } else {
                if (!e->full) {
                    e->pos++; /* the zero (or the virtual one at the end) the code stood for */
                }
                e->state = ENC_CODE;
            }
            break;
        case ENC_END:
        default:
            out[k++] = 0;
            e->state = ENC_DONE;
            break;
        }
    }
    return k;
}

/* ---- the link ----------------------------------------------------------------------------- */

static sprig_ns_serial *serial_of(sprig_ns_link *link)
{
    return SPRIG_CONTAINER_OF(link, sprig_ns_serial, link);
}

static void pump(sprig_ns_serial *s)
{
    if (s->pumping) {
        return;
    }
    s->pumping = true;
    for (;;) {
        if (s->stage_off < s->stage_len) {
            size_t w = 0;
            sprig_status st = s->cfg.io.write(s->cfg.io.ctx, s->stage + s->stage_off,
                                              s->stage_len - s->stage_off, &w);
            if (st != SPRIG_STATUS_OK && st != SPRIG_STATUS_UNAVAILABLE) {
                s->stats.tx_errors++;
                sprig_buf_free(s->tx_buf);
                s->tx_buf = NULL;
                s->stage_off = s->stage_len = 0;
                s->idle = true; /* lead the next frame with a delimiter */
                continue;
            }
            if (w > s->stage_len - s->stage_off) {
                w = s->stage_len - s->stage_off;
            }
            s->stage_off += w;
            if (s->stage_off < s->stage_len) {
                break; /* wait for sprig_ns_serial_writable() */
            }
        } else if (s->tx_buf != NULL) {
            size_t n = sprig_ns_cobs_enc_fill(&s->enc, s->stage, sizeof(s->stage));
            if (n == 0) {
                sprig_buf_free(s->tx_buf);
                s->tx_buf = NULL;
                s->stats.tx_frames++;
            }
            s->stage_off = 0;
            s->stage_len = n;
        } else {
            sprig_buf *b = sprig_ns_link_next(&s->link);
            if (b == NULL) {
                s->idle = true;
                break;
            }
            s->tx_buf = b;
            sprig_ns_cobs_enc_start(&s->enc, sprig_buf_data(b), sprig_buf_len(b), s->idle);
            s->idle = false;
        }
    }
    s->pumping = false;
}

static void kick(sprig_ns_link *link)
{
    pump(serial_of(link));
}

static const sprig_ns_link_ops serial_ops = {.kick = kick};

sprig_status sprig_ns_serial_init(sprig_ns_serial *s, const sprig_ns_serial_cfg *cfg)
{
    if (s == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(s, 0, sizeof(*s));
    if (cfg == NULL || cfg->io.write == NULL || cfg->pool == NULL ||
        cfg->mtu < SPRIG_NS_HEADER_LEN || cfg->mtu > SPRIG_CONFIG_NS_MAX_MTU ||
        cfg->pool->buf_size < (size_t)cfg->mtu + SPRIG_NS_SERIAL_CRC_LEN) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    s->cfg = *cfg;
    (void)sprig_ns_link_init(&s->link, &serial_ops, cfg->mtu);
    sprig_ns_cobs_dec_init(&s->dec, SPRIG_NS_HEADER_LEN);
    s->idle = true;
    return SPRIG_STATUS_OK;
}

void sprig_ns_serial_deinit(sprig_ns_serial *s)
{
    if (s == NULL || s->link.ops == NULL) {
        return;
    }
    sprig_ns_link_deinit(&s->link);
    sprig_buf_free(s->tx_buf);
    s->tx_buf = NULL;
    sprig_buf_free(s->rx_buf);
    s->rx_buf = NULL;
    s->link.ops = NULL;
}

void sprig_ns_serial_input(sprig_ns_serial *s, const uint8_t *data, size_t len)
{
    size_t cap = (size_t)s->cfg.mtu + SPRIG_NS_SERIAL_CRC_LEN;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = data[i];
        if (s->rx_skip) {
            if (b == 0) {
                s->rx_skip = false;
                sprig_ns_cobs_dec_reset(&s->dec);
            }
            continue;
        }
        if (s->rx_buf == NULL) {
            if (b == 0) {
                sprig_ns_cobs_dec_reset(&s->dec);
                continue;
            }
            s->rx_buf = sprig_buf_alloc(s->cfg.pool, 0);
            if (s->rx_buf == NULL) {
                s->stats.no_buffer++;
                s->rx_skip = true;
                continue;
            }
        }
        size_t n = 0;
        sprig_ns_cobs_result r =
            sprig_ns_cobs_dec_byte(&s->dec, b, sprig_buf_data(s->rx_buf), cap, &n);
        s->stats.rx = s->dec.stats;
        if (r == SPRIG_NS_COBS_FRAME) {
            sprig_buf *pkt = s->rx_buf;
            s->rx_buf = NULL;
            (void)sprig_buf_put(pkt, n);
            sprig_ns_link_input(&s->link, pkt);
        }
    }
}

void sprig_ns_serial_writable(sprig_ns_serial *s)
{
    pump(s);
}

bool sprig_ns_serial_tx_busy(const sprig_ns_serial *s)
{
    return s->tx_buf != NULL || s->stage_off < s->stage_len || sprig_ns_link_queued(&s->link) > 0;
}
