/*
 * g2h_link: reference codec of the g2h-edge firmware link format v1 (C99).
 *
 * No dynamic allocation, no dependencies beyond <stddef.h>/<stdint.h>, no undefined
 * behaviour on any input. Every function takes explicit buffer capacities.
 *
 * Frame (decoded) = header (12 bytes) + payload (<= 1024 bytes) + CRC-16 (2 bytes),
 * all integers little-endian:
 *   u8 version (=1) | u8 type | u8 stream | u8 flags (0) | u16 seq | u16 length | u32 t_us
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) over header and
 * payload. On a serial line: COBS(frame) followed by one 0x00. Over UDP: the plain frame.
 * Floats are IEEE-754 binary32, little-endian.
 */
#ifndef G2H_LINK_H
#define G2H_LINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define G2H_LINK_VERSION 1u
#define G2H_HEADER_BYTES 12u
#define G2H_CRC_BYTES 2u
#define G2H_MAX_PAYLOAD 1024u
#define G2H_MAX_FRAME (G2H_HEADER_BYTES + G2H_MAX_PAYLOAD + G2H_CRC_BYTES) /* 1038 */
/* largest COBS encoding of n bytes, without the 0x00 delimiter */
#define G2H_COBS_MAX(n) ((n) + (n) / 254u + 1u)
#define G2H_MAX_ENCODED G2H_COBS_MAX(G2H_MAX_FRAME) /* 1043 */
#define G2H_N_ANGLES 10u

enum g2h_type {
    G2H_ANGLES = 0x01,     /* device -> bridge: 10 x f32 degrees, schema channel order */
    G2H_IC_EVENT = 0x02,   /* device -> bridge: u8 side (0 R, 1 L), u32 t_us of the contact */
    G2H_META = 0x03,       /* device -> bridge: f32 rate_hz, f32 body_mass_kg (0: unknown) */
    G2H_PREDICTION = 0x10, /* bridge -> device: u8 side, u8 kind, u16 cycle, u8 channels,
                              u8 points, channels x points i16 milli-units per kg */
    G2H_STATUS = 0x11      /* bridge -> device: u32 frames_ok, crc_errors, framing_errors,
                              seq_gaps */
};

enum g2h_result {
    G2H_OK = 0,
    G2H_ERR_COBS = -1,      /* malformed COBS block sequence */
    G2H_ERR_TRUNCATED = -2, /* shorter than header + CRC, or than its length field says */
    G2H_ERR_OVERSIZE = -3,  /* longer than G2H_MAX_FRAME / payload over G2H_MAX_PAYLOAD */
    G2H_ERR_CRC = -4,
    G2H_ERR_VERSION = -5,
    G2H_ERR_LENGTH = -6,    /* longer than its length field says */
    G2H_ERR_TYPE = -7,      /* unknown type, or parsing a frame as the wrong type */
    G2H_ERR_PAYLOAD = -8,   /* payload size or field value wrong for the type */
    G2H_ERR_ARG = -9,       /* bad argument (NULL pointer, value out of range) */
    G2H_ERR_SPACE = -10     /* output buffer too small */
};

/* Identity of a frame: device stream (0..255), sequence number (wraps), device clock. */
typedef struct {
    uint8_t stream;
    uint16_t seq;
    uint32_t t_us;
} g2h_id;

/* A checked frame. `payload` points into the caller's frame buffer. */
typedef struct {
    uint8_t type;
    uint8_t flags;
    g2h_id id;
    uint16_t length;
    const uint8_t *payload;
} g2h_frame;

typedef struct { float q[G2H_N_ANGLES]; } g2h_angles;
typedef struct { uint8_t side; uint32_t t_us; } g2h_ic_event;
typedef struct { float rate_hz; float body_mass_kg; } g2h_meta;
typedef struct {
    uint8_t side, kind; /* kind: 0 muscle force (N/kg), 1 joint moment (Nm/kg) */
    uint16_t cycle;
    uint8_t channels, points;
} g2h_prediction;
typedef struct {
    uint32_t frames_ok, crc_errors, framing_errors, seq_gaps;
} g2h_status;

/* ---- CRC and COBS ---------------------------------------------------------------- */
/* CRC-16/CCITT-FALSE; start with crc = 0xFFFF. g2h_crc16("123456789", 9, 0xFFFF) = 0x29B1 */
uint16_t g2h_crc16(const uint8_t *data, size_t n, uint16_t crc);
/* Encode n bytes into dst (no delimiter). Returns G2H_OK and *out_len, or G2H_ERR_SPACE. */
int g2h_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out_len);
/* Decode n bytes (no delimiter). G2H_ERR_COBS on a 0x00 inside or a block past the end.
 * dst may equal src (in-place decoding). */
int g2h_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out_len);

/* ---- frames ---------------------------------------------------------------------- */
/* header + payload + CRC into out (cap >= 14 + len). */
int g2h_pack_frame(uint8_t type, g2h_id id, const uint8_t *payload, size_t len,
                   uint8_t *out, size_t cap, size_t *out_len);
/* Check CRC, version, length and type of a decoded frame; fills *f. */
int g2h_parse_frame(const uint8_t *frame, size_t n, g2h_frame *f);

int g2h_pack_angles(g2h_id id, const g2h_angles *a, uint8_t *out, size_t cap, size_t *out_len);
int g2h_pack_ic_event(g2h_id id, const g2h_ic_event *e, uint8_t *out, size_t cap,
                      size_t *out_len);
int g2h_pack_meta(g2h_id id, const g2h_meta *m, uint8_t *out, size_t cap, size_t *out_len);
/* values: channels x points, channel-major (all points of channel 0 first) */
int g2h_pack_prediction(g2h_id id, const g2h_prediction *p, const int16_t *values,
                        uint8_t *out, size_t cap, size_t *out_len);
int g2h_pack_status(g2h_id id, const g2h_status *s, uint8_t *out, size_t cap, size_t *out_len);

int g2h_parse_angles(const g2h_frame *f, g2h_angles *a);
int g2h_parse_ic_event(const g2h_frame *f, g2h_ic_event *e);
int g2h_parse_meta(const g2h_frame *f, g2h_meta *m);
/* values receives channels x points int16 (cap = room in values, in elements) */
int g2h_parse_prediction(const g2h_frame *f, g2h_prediction *p, int16_t *values, size_t cap);
int g2h_parse_status(const g2h_frame *f, g2h_status *s);

/* frame -> COBS + 0x00 into out (cap >= G2H_COBS_MAX(n) + 1) */
int g2h_serial_encode(const uint8_t *frame, size_t n, uint8_t *out, size_t cap,
                      size_t *out_len);

/* ---- byte-at-a-time streaming deframer (for the MCU's UART interrupt / loop) ------- */
typedef struct {
    uint8_t buf[G2H_MAX_ENCODED]; /* encoded bytes, decoded in place at the 0x00 */
    size_t len;
    uint8_t synced;   /* 0 until the first 0x00: bytes before it are a partial frame */
    uint8_t dropping; /* oversize run: skip to the next 0x00 */
    uint32_t frames_ok, crc_errors, framing_errors, oversize, wrong_version, unknown_type;
} g2h_deframer;

void g2h_deframer_init(g2h_deframer *d);
/* Push one received byte. Returns 1 and fills *f when it completes a valid frame (valid
 * until the next push), 0 otherwise; errors are counted in *d, never reported otherwise. */
int g2h_deframer_push(g2h_deframer *d, uint8_t byte, g2h_frame *f);

#ifdef __cplusplus
}
#endif
#endif /* G2H_LINK_H */
