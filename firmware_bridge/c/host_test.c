/*
 * host_test: drives the g2h_link codec from a host for the Python test-suite.
 *
 *   host_test lines          one command per stdin line, one result line each:
 *       crc HEX | cobs HEX | uncobs HEX | serial HEX | parse HEX
 *       pack_angles S SEQ TUS F0..F9      (F = float32 bits in hex)
 *       pack_ic S SEQ TUS SIDE IC_TUS
 *       pack_meta S SEQ TUS RATE_BITS MASS_BITS
 *       pack_prediction S SEQ TUS SIDE KIND CYCLE CH PTS V...
 *       pack_status S SEQ TUS A B C D
 *     (HEX "-" = no bytes). Results: lowercase hex, "ok ..." or "err CODE".
 *   host_test stream [FILE]  feed bytes one at a time to the streaming deframer; prints
 *       "frame TYPE STREAM SEQ TUS LEN RC" per frame and a final "counters ..." line.
 *   host_test chunks [FILE]  cut the bytes into pseudo-random pieces and run every strict
 *       decoder (COBS, frame, all typed parsers) on each; prints a summary.
 */
#include "g2h_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_CHARS 16384
static char line[LINE_MAX_CHARS];
static uint8_t in_buf[LINE_MAX_CHARS / 2];
static uint8_t out_buf[2 * LINE_MAX_CHARS];

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* parse a hex token into in_buf; returns length or -1 */
static long parse_hex(const char *tok)
{
    size_t n = 0;
    if (tok == NULL) return -1;
    if (strcmp(tok, "-") == 0) return 0;
    while (tok[0] && tok[1]) {
        int hi = hexval((unsigned char)tok[0]), lo = hexval((unsigned char)tok[1]);
        if (hi < 0 || lo < 0 || n >= sizeof in_buf) return -1;
        in_buf[n++] = (uint8_t)(hi * 16 + lo);
        tok += 2;
    }
    return tok[0] ? -1 : (long)n;
}

static void print_hex(const uint8_t *p, size_t n)
{
    size_t i;
    if (n == 0) fputs("-", stdout);
    for (i = 0; i < n; i++) printf("%02x", p[i]);
    putchar('\n');
}

static unsigned long next_ul(void)
{
    const char *t = strtok(NULL, " \t\r\n");
    return t ? strtoul(t, NULL, 0) : 0ul;
}

static float bits_to_float(unsigned long b)
{
    uint32_t u = (uint32_t)b;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static unsigned long float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (unsigned long)u;
}

static g2h_id read_id(void)
{
    g2h_id id;
    id.stream = (uint8_t)next_ul();
    id.seq = (uint16_t)next_ul();
    id.t_us = (uint32_t)next_ul();
    return id;
}

static void print_parsed(const uint8_t *p, size_t n)
{
    static int16_t values[G2H_MAX_PAYLOAD / 2];
    g2h_frame f;
    int rc = g2h_parse_frame(p, n, &f), i;
    if (rc != G2H_OK) { printf("err %d\n", rc); return; }
    printf("ok %u %u %u %lu %u", f.type, f.id.stream, f.id.seq, (unsigned long)f.id.t_us,
           f.flags);
    if (f.type == G2H_ANGLES) {
        g2h_angles a;
        rc = g2h_parse_angles(&f, &a);
        for (i = 0; rc == G2H_OK && i < (int)G2H_N_ANGLES; i++) printf(" %08lx", float_bits(a.q[i]));
    } else if (f.type == G2H_IC_EVENT) {
        g2h_ic_event e;
        rc = g2h_parse_ic_event(&f, &e);
        if (rc == G2H_OK) printf(" %u %lu", e.side, (unsigned long)e.t_us);
    } else if (f.type == G2H_META) {
        g2h_meta m;
        rc = g2h_parse_meta(&f, &m);
        if (rc == G2H_OK) printf(" %08lx %08lx", float_bits(m.rate_hz), float_bits(m.body_mass_kg));
    } else if (f.type == G2H_PREDICTION) {
        g2h_prediction pr;
        rc = g2h_parse_prediction(&f, &pr, values, sizeof values / sizeof values[0]);
        if (rc == G2H_OK) {
            printf(" %u %u %u %u %u", pr.side, pr.kind, pr.cycle, pr.channels, pr.points);
            for (i = 0; i < pr.channels * pr.points; i++) printf(" %d", values[i]);
        }
    } else {
        g2h_status s;
        rc = g2h_parse_status(&f, &s);
        if (rc == G2H_OK) printf(" %lu %lu %lu %lu", (unsigned long)s.frames_ok,
                                 (unsigned long)s.crc_errors, (unsigned long)s.framing_errors,
                                 (unsigned long)s.seq_gaps);
    }
    if (rc != G2H_OK) printf(" payload_err %d", rc);
    putchar('\n');
}

static int do_pack(const char *cmd)
{
    static int16_t values[G2H_MAX_PAYLOAD];
    size_t n = 0;
    int rc, i;
    g2h_id id = read_id();
    if (strcmp(cmd, "pack_angles") == 0) {
        g2h_angles a;
        for (i = 0; i < (int)G2H_N_ANGLES; i++) a.q[i] = bits_to_float(next_ul());
        rc = g2h_pack_angles(id, &a, out_buf, sizeof out_buf, &n);
    } else if (strcmp(cmd, "pack_ic") == 0) {
        g2h_ic_event e;
        e.side = (uint8_t)next_ul();
        e.t_us = (uint32_t)next_ul();
        rc = g2h_pack_ic_event(id, &e, out_buf, sizeof out_buf, &n);
    } else if (strcmp(cmd, "pack_meta") == 0) {
        g2h_meta m;
        m.rate_hz = bits_to_float(next_ul());
        m.body_mass_kg = bits_to_float(next_ul());
        rc = g2h_pack_meta(id, &m, out_buf, sizeof out_buf, &n);
    } else if (strcmp(cmd, "pack_prediction") == 0) {
        g2h_prediction p;
        p.side = (uint8_t)next_ul();
        p.kind = (uint8_t)next_ul();
        p.cycle = (uint16_t)next_ul();
        p.channels = (uint8_t)next_ul();
        p.points = (uint8_t)next_ul();
        for (i = 0; i < p.channels * p.points && i < (int)G2H_MAX_PAYLOAD; i++) {
            const char *t = strtok(NULL, " \t\r\n");
            values[i] = (int16_t)(t ? strtol(t, NULL, 10) : 0);
        }
        rc = g2h_pack_prediction(id, &p, values, out_buf, sizeof out_buf, &n);
    } else if (strcmp(cmd, "pack_status") == 0) {
        g2h_status s;
        s.frames_ok = (uint32_t)next_ul();
        s.crc_errors = (uint32_t)next_ul();
        s.framing_errors = (uint32_t)next_ul();
        s.seq_gaps = (uint32_t)next_ul();
        rc = g2h_pack_status(id, &s, out_buf, sizeof out_buf, &n);
    } else {
        return 0;
    }
    if (rc != G2H_OK) printf("err %d\n", rc);
    else print_hex(out_buf, n);
    return 1;
}

static int run_lines(void)
{
    while (fgets(line, sizeof line, stdin)) {
        const char *cmd = strtok(line, " \t\r\n");
        size_t n = 0;
        long k;
        int rc;
        if (cmd == NULL) continue;
        if (strncmp(cmd, "pack_", 5) == 0) {
            if (!do_pack(cmd)) printf("err unknown_command\n");
            continue;
        }
        k = parse_hex(strtok(NULL, " \t\r\n"));
        if (k < 0) { printf("err bad_hex\n"); continue; }
        if (strcmp(cmd, "crc") == 0) {
            printf("%04x\n", g2h_crc16(in_buf, (size_t)k, 0xFFFFu));
        } else if (strcmp(cmd, "cobs") == 0 || strcmp(cmd, "serial") == 0) {
            rc = cmd[0] == 'c' ? g2h_cobs_encode(in_buf, (size_t)k, out_buf, sizeof out_buf, &n)
                               : g2h_serial_encode(in_buf, (size_t)k, out_buf, sizeof out_buf, &n);
            if (rc != G2H_OK) printf("err %d\n", rc);
            else print_hex(out_buf, n);
        } else if (strcmp(cmd, "uncobs") == 0) {
            rc = g2h_cobs_decode(in_buf, (size_t)k, out_buf, sizeof out_buf, &n);
            if (rc != G2H_OK) printf("err %d\n", rc);
            else print_hex(out_buf, n);
        } else if (strcmp(cmd, "parse") == 0) {
            print_parsed(in_buf, (size_t)k);
        } else {
            printf("err unknown_command\n");
        }
        fflush(stdout);
    }
    return 0;
}

static FILE *open_input(int argc, char **argv)
{
    if (argc > 2) {
        FILE *fp = fopen(argv[2], "rb");
        if (fp == NULL) { perror(argv[2]); exit(2); }
        return fp;
    }
    return stdin;
}

static int run_stream(FILE *fp)
{
    static g2h_deframer d; /* static: 1 KB+ buffer, as on an MCU */
    static int16_t values[G2H_MAX_PAYLOAD / 2];
    int c;
    g2h_deframer_init(&d);
    while ((c = fgetc(fp)) != EOF) {
        g2h_frame f;
        if (g2h_deframer_push(&d, (uint8_t)c, &f)) {
            int rc;
            g2h_angles a; g2h_ic_event e; g2h_meta m; g2h_prediction p; g2h_status s;
            switch (f.type) {
            case G2H_ANGLES: rc = g2h_parse_angles(&f, &a); break;
            case G2H_IC_EVENT: rc = g2h_parse_ic_event(&f, &e); break;
            case G2H_META: rc = g2h_parse_meta(&f, &m); break;
            case G2H_PREDICTION:
                rc = g2h_parse_prediction(&f, &p, values, sizeof values / sizeof values[0]);
                break;
            default: rc = g2h_parse_status(&f, &s); break;
            }
            printf("frame %u %u %u %lu %u %d\n", f.type, f.id.stream, f.id.seq,
                   (unsigned long)f.id.t_us, f.length, rc);
        }
    }
    printf("counters %lu %lu %lu %lu %lu %lu\n", (unsigned long)d.frames_ok,
           (unsigned long)d.crc_errors, (unsigned long)d.framing_errors,
           (unsigned long)d.oversize, (unsigned long)d.wrong_version,
           (unsigned long)d.unknown_type);
    return 0;
}

static int run_chunks(FILE *fp)
{
    static uint8_t data[1 << 20];
    static uint8_t dec[2048];
    static int16_t values[G2H_MAX_PAYLOAD / 2];
    size_t total = fread(data, 1, sizeof data, fp), pos = 0;
    uint32_t lcg = 12345u;
    unsigned long pieces = 0, cobs_ok = 0, frames_ok = 0, payload_ok = 0;
    while (pos < total) {
        size_t len, n = 0;
        g2h_frame f;
        uint8_t t;
        lcg = lcg * 1103515245u + 12345u;
        len = (size_t)((lcg >> 8) % 1100u);
        if (len > total - pos) len = total - pos;
        pieces++;
        if (g2h_cobs_decode(data + pos, len, dec, sizeof dec, &n) == G2H_OK) cobs_ok++;
        if (g2h_parse_frame(data + pos, len, &f) == G2H_OK) frames_ok++;
        /* every typed parser on the raw bytes taken as a payload, whatever its type */
        for (t = 0; t < 5; t++) {
            static const uint8_t types[5] = {G2H_ANGLES, G2H_IC_EVENT, G2H_META,
                                             G2H_PREDICTION, G2H_STATUS};
            g2h_angles a; g2h_ic_event e; g2h_meta m; g2h_prediction p; g2h_status s;
            int rc;
            f.type = types[t];
            f.length = (uint16_t)(len > 0xFFFFu ? 0xFFFFu : len);
            f.payload = data + pos;
            switch (t) {
            case 0: rc = g2h_parse_angles(&f, &a); break;
            case 1: rc = g2h_parse_ic_event(&f, &e); break;
            case 2: rc = g2h_parse_meta(&f, &m); break;
            case 3: rc = g2h_parse_prediction(&f, &p, values, sizeof values / sizeof values[0]); break;
            default: rc = g2h_parse_status(&f, &s); break;
            }
            if (rc == G2H_OK) payload_ok++;
        }
        pos += len ? len : 1;
    }
    printf("chunks %lu %lu %lu %lu\n", pieces, cobs_ok, frames_ok, payload_ok);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: host_test lines | stream [FILE] | chunks [FILE]\n");
        return 2;
    }
    if (strcmp(argv[1], "lines") == 0) return run_lines();
    if (strcmp(argv[1], "stream") == 0) return run_stream(open_input(argc, argv));
    if (strcmp(argv[1], "chunks") == 0) return run_chunks(open_input(argc, argv));
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
