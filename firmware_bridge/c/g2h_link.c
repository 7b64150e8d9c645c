/* g2h_link.c: link format v1 reference codec (see g2h_link.h and docs/firmware_bridge.md). */
#include "g2h_link.h"

#include <string.h>

/* ---- little-endian helpers (explicit widening: no shifts of promoted signed ints) ---- */
static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    put_u32(p, bits);
}

static float get_f32(const uint8_t *p)
{
    uint32_t bits = get_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- CRC-16/CCITT-FALSE, table-free byte update (poly 0x1021) ----------------------- */
uint16_t g2h_crc16(const uint8_t *data, size_t n, uint16_t crc)
{
    size_t i;
    if (data == NULL)
        return crc;
    for (i = 0; i < n; i++) {
        uint16_t x = (uint16_t)(((crc >> 8) ^ data[i]) & 0xFFu);
        x = (uint16_t)(x ^ (x >> 4));
        crc = (uint16_t)((uint16_t)(crc << 8) ^ (uint16_t)(x << 12) ^ (uint16_t)(x << 5) ^ x);
    }
    return crc;
}

/* ---- COBS ------------------------------------------------------------------------------ */
int g2h_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out_len)
{
    size_t i, o = 1, code_at = 0;
    uint8_t code = 1;
    if ((src == NULL && n > 0) || dst == NULL || out_len == NULL)
        return G2H_ERR_ARG;
    if (cap < G2H_COBS_MAX(n))
        return G2H_ERR_SPACE;
    for (i = 0; i < n; i++) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        dst[o++] = src[i];
        code++;
        if (code == 0xFF) { /* 254 data bytes: close the block without an implied zero */
            dst[code_at] = code;
            code_at = o++;
            code = 1;
        }
    }
    dst[code_at] = code;
    *out_len = o;
    return G2H_OK;
}

int g2h_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out_len)
{
    size_t i = 0, o = 0;
    if ((src == NULL && n > 0) || dst == NULL || out_len == NULL)
        return G2H_ERR_ARG;
    while (i < n) {
        size_t code = src[i], k;
        if (code == 0 || code > n - i)
            return G2H_ERR_COBS;
        if (o + code - 1 > cap)
            return G2H_ERR_SPACE;
        for (k = 1; k < code; k++) { /* o < i + k always: in-place decoding is safe */
            if (src[i + k] == 0)
                return G2H_ERR_COBS;
            dst[o++] = src[i + k];
        }
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= cap)
                return G2H_ERR_SPACE;
            dst[o++] = 0;
        }
    }
    *out_len = o;
    return G2H_OK;
}

/* ---- frames ---------------------------------------------------------------------------- */
static int known_type(uint8_t t)
{
    return t == G2H_ANGLES || t == G2H_IC_EVENT || t == G2H_META || t == G2H_PREDICTION ||
           t == G2H_STATUS;
}

int g2h_pack_frame(uint8_t type, g2h_id id, const uint8_t *payload, size_t len,
                   uint8_t *out, size_t cap, size_t *out_len)
{
    uint16_t crc;
    if ((payload == NULL && len > 0) || out == NULL || out_len == NULL)
        return G2H_ERR_ARG;
    if (len > G2H_MAX_PAYLOAD)
        return G2H_ERR_OVERSIZE;
    if (cap < G2H_HEADER_BYTES + len + G2H_CRC_BYTES)
        return G2H_ERR_SPACE;
    out[0] = (uint8_t)G2H_LINK_VERSION;
    out[1] = type;
    out[2] = id.stream;
    out[3] = 0; /* flags */
    put_u16(out + 4, id.seq);
    put_u16(out + 6, (uint16_t)len);
    put_u32(out + 8, id.t_us);
    if (len > 0)
        memmove(out + G2H_HEADER_BYTES, payload, len);
    crc = g2h_crc16(out, G2H_HEADER_BYTES + len, 0xFFFFu);
    put_u16(out + G2H_HEADER_BYTES + len, crc);
    *out_len = G2H_HEADER_BYTES + len + G2H_CRC_BYTES;
    return G2H_OK;
}

int g2h_parse_frame(const uint8_t *frame, size_t n, g2h_frame *f)
{
    uint16_t length;
    if (frame == NULL || f == NULL)
        return G2H_ERR_ARG;
    if (n < G2H_HEADER_BYTES + G2H_CRC_BYTES)
        return G2H_ERR_TRUNCATED;
    if (n > G2H_MAX_FRAME)
        return G2H_ERR_OVERSIZE;
    if (g2h_crc16(frame, n - G2H_CRC_BYTES, 0xFFFFu) != get_u16(frame + n - G2H_CRC_BYTES))
        return G2H_ERR_CRC;
    if (frame[0] != G2H_LINK_VERSION)
        return G2H_ERR_VERSION;
    length = get_u16(frame + 6);
    if (length > G2H_MAX_PAYLOAD)
        return G2H_ERR_OVERSIZE;
    if ((size_t)length != n - G2H_HEADER_BYTES - G2H_CRC_BYTES)
        return (size_t)length > n - G2H_HEADER_BYTES - G2H_CRC_BYTES ? G2H_ERR_TRUNCATED
                                                                      : G2H_ERR_LENGTH;
    if (!known_type(frame[1]))
        return G2H_ERR_TYPE;
    f->type = frame[1];
    f->id.stream = frame[2];
    f->flags = frame[3];
    f->id.seq = get_u16(frame + 4);
    f->length = length;
    f->id.t_us = get_u32(frame + 8);
    f->payload = frame + G2H_HEADER_BYTES;
    return G2H_OK;
}

int g2h_serial_encode(const uint8_t *frame, size_t n, uint8_t *out, size_t cap,
                      size_t *out_len)
{
    size_t k;
    int rc;
    if (out == NULL || out_len == NULL || cap < 1)
        return G2H_ERR_ARG;
    rc = g2h_cobs_encode(frame, n, out, cap - 1, &k);
    if (rc != G2H_OK)
        return rc;
    out[k] = 0;
    *out_len = k + 1;
    return G2H_OK;
}

/* ---- typed packers ---------------------------------------------------------------------- */
int g2h_pack_angles(g2h_id id, const g2h_angles *a, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t p[4 * G2H_N_ANGLES];
    size_t i;
    if (a == NULL)
        return G2H_ERR_ARG;
    for (i = 0; i < G2H_N_ANGLES; i++)
        put_f32(p + 4 * i, a->q[i]);
    return g2h_pack_frame(G2H_ANGLES, id, p, sizeof p, out, cap, out_len);
}

int g2h_pack_ic_event(g2h_id id, const g2h_ic_event *e, uint8_t *out, size_t cap,
                      size_t *out_len)
{
    uint8_t p[5];
    if (e == NULL || e->side > 1)
        return G2H_ERR_ARG;
    p[0] = e->side;
    put_u32(p + 1, e->t_us);
    return g2h_pack_frame(G2H_IC_EVENT, id, p, sizeof p, out, cap, out_len);
}

int g2h_pack_meta(g2h_id id, const g2h_meta *m, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t p[8];
    if (m == NULL)
        return G2H_ERR_ARG;
    put_f32(p, m->rate_hz);
    put_f32(p + 4, m->body_mass_kg);
    return g2h_pack_frame(G2H_META, id, p, sizeof p, out, cap, out_len);
}

int g2h_pack_prediction(g2h_id id, const g2h_prediction *pr, const int16_t *values,
                        uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n, i, len, need;
    uint16_t crc;
    if (pr == NULL || out == NULL || out_len == NULL || pr->side > 1 || pr->kind > 1 ||
        pr->channels == 0 || pr->points == 0 || values == NULL)
        return G2H_ERR_ARG;
    n = (size_t)pr->channels * pr->points;
    len = 6 + 2 * n;
    if (len > G2H_MAX_PAYLOAD)
        return G2H_ERR_OVERSIZE;
    need = G2H_HEADER_BYTES + len + G2H_CRC_BYTES;
    if (cap < need)
        return G2H_ERR_SPACE;
    /* payload written in place after the header (no large stack buffer on the MCU) */
    out[G2H_HEADER_BYTES + 0] = pr->side;
    out[G2H_HEADER_BYTES + 1] = pr->kind;
    put_u16(out + G2H_HEADER_BYTES + 2, pr->cycle);
    out[G2H_HEADER_BYTES + 4] = pr->channels;
    out[G2H_HEADER_BYTES + 5] = pr->points;
    for (i = 0; i < n; i++)
        put_u16(out + G2H_HEADER_BYTES + 6 + 2 * i, (uint16_t)values[i]);
    out[0] = (uint8_t)G2H_LINK_VERSION;
    out[1] = G2H_PREDICTION;
    out[2] = id.stream;
    out[3] = 0;
    put_u16(out + 4, id.seq);
    put_u16(out + 6, (uint16_t)len);
    put_u32(out + 8, id.t_us);
    crc = g2h_crc16(out, G2H_HEADER_BYTES + len, 0xFFFFu);
    put_u16(out + G2H_HEADER_BYTES + len, crc);
    *out_len = need;
    return G2H_OK;
}

int g2h_pack_status(g2h_id id, const g2h_status *s, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t p[16];
    if (s == NULL)
        return G2H_ERR_ARG;
    put_u32(p, s->frames_ok);
    put_u32(p + 4, s->crc_errors);
    put_u32(p + 8, s->framing_errors);
    put_u32(p + 12, s->seq_gaps);
    return g2h_pack_frame(G2H_STATUS, id, p, sizeof p, out, cap, out_len);
}

/* ---- typed parsers ---------------------------------------------------------------------- */
static int check(const g2h_frame *f, const void *dst, uint8_t type)
{
    if (f == NULL || dst == NULL || (f->payload == NULL && f->length > 0))
        return G2H_ERR_ARG;
    return f->type == type ? G2H_OK : G2H_ERR_TYPE;
}

int g2h_parse_angles(const g2h_frame *f, g2h_angles *a)
{
    size_t i;
    int rc = check(f, a, G2H_ANGLES);
    if (rc != G2H_OK)
        return rc;
    if (f->length != 4 * G2H_N_ANGLES)
        return G2H_ERR_PAYLOAD;
    for (i = 0; i < G2H_N_ANGLES; i++)
        a->q[i] = get_f32(f->payload + 4 * i);
    return G2H_OK;
}

int g2h_parse_ic_event(const g2h_frame *f, g2h_ic_event *e)
{
    int rc = check(f, e, G2H_IC_EVENT);
    if (rc != G2H_OK)
        return rc;
    if (f->length != 5 || f->payload[0] > 1)
        return G2H_ERR_PAYLOAD;
    e->side = f->payload[0];
    e->t_us = get_u32(f->payload + 1);
    return G2H_OK;
}

int g2h_parse_meta(const g2h_frame *f, g2h_meta *m)
{
    int rc = check(f, m, G2H_META);
    if (rc != G2H_OK)
        return rc;
    if (f->length != 8)
        return G2H_ERR_PAYLOAD;
    m->rate_hz = get_f32(f->payload);
    m->body_mass_kg = get_f32(f->payload + 4);
    return G2H_OK;
}

int g2h_parse_prediction(const g2h_frame *f, g2h_prediction *p, int16_t *values, size_t cap)
{
    size_t n, i;
    int rc = check(f, p, G2H_PREDICTION);
    if (rc != G2H_OK)
        return rc;
    if (f->length < 6)
        return G2H_ERR_PAYLOAD;
    n = (size_t)f->payload[4] * f->payload[5];
    if ((size_t)f->length != 6 + 2 * n || f->payload[0] > 1 || f->payload[1] > 1)
        return G2H_ERR_PAYLOAD;
    if (n > cap || (values == NULL && n > 0))
        return G2H_ERR_SPACE;
    p->side = f->payload[0];
    p->kind = f->payload[1];
    p->cycle = get_u16(f->payload + 2);
    p->channels = f->payload[4];
    p->points = f->payload[5];
    for (i = 0; i < n; i++) {
        uint16_t u = get_u16(f->payload + 6 + 2 * i);
        /* two's complement without implementation-defined conversion */
        values[i] = u < 0x8000u ? (int16_t)u : (int16_t)(-(int32_t)(0x10000u - u));
    }
    return G2H_OK;
}

int g2h_parse_status(const g2h_frame *f, g2h_status *s)
{
    int rc = check(f, s, G2H_STATUS);
    if (rc != G2H_OK)
        return rc;
    if (f->length != 16)
        return G2H_ERR_PAYLOAD;
    s->frames_ok = get_u32(f->payload);
    s->crc_errors = get_u32(f->payload + 4);
    s->framing_errors = get_u32(f->payload + 8);
    s->seq_gaps = get_u32(f->payload + 12);
    return G2H_OK;
}

/* ---- streaming deframer ---------------------------------------------------------------- */
void g2h_deframer_init(g2h_deframer *d)
{
    if (d == NULL)
        return;
    memset(d, 0, sizeof *d);
}

static void count_error(g2h_deframer *d, int rc)
{
    switch (rc) {
    case G2H_ERR_CRC: d->crc_errors++; break;
    case G2H_ERR_VERSION: d->wrong_version++; break;
    case G2H_ERR_TYPE: d->unknown_type++; break;
    case G2H_ERR_OVERSIZE: d->oversize++; break;
    default: d->framing_errors++; break;
    }
}

int g2h_deframer_push(g2h_deframer *d, uint8_t byte, g2h_frame *f)
{
    size_t n;
    int rc;
    if (d == NULL || f == NULL)
        return 0;
    if (byte != 0) {
        if (!d->synced || d->dropping)
            return 0;
        if (d->len >= G2H_MAX_ENCODED) { /* no delimiter in time: skip to the next 0x00 */
            d->oversize++;
            d->dropping = 1;
            d->len = 0;
            return 0;
        }
        d->buf[d->len++] = byte;
        return 0;
    }
    /* delimiter */
    n = d->len;
    d->len = 0;
    if (!d->synced || d->dropping) {
        d->synced = 1;
        d->dropping = 0;
        return 0;
    }
    if (n == 0)
        return 0; /* idle / extra delimiter */
    rc = g2h_cobs_decode(d->buf, n, d->buf, sizeof d->buf, &n);
    if (rc != G2H_OK) {
        d->framing_errors++;
        return 0;
    }
    rc = g2h_parse_frame(d->buf, n, f);
    if (rc != G2H_OK) {
        count_error(d, rc);
        return 0;
    }
    d->frames_ok++;
    return 1;
}
