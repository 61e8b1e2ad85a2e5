/*
 * sm2.c - GB/T 32918.2-2016 clause 5.5 user hash Z_A = SM3(ENTL || ID || a || b || xG || yG
 * || xA || yA), and conversion of (r, s) between the raw 2n-byte big-endian form used on
 * the PKCS#11 interface (v2.40 current mechanisms 2.3.1, ECDSA signature encoding) and the
 * DER SEQUENCE { r INTEGER, s INTEGER } used by OpenSSL.
 */
#include "st.h"
#include <string.h>

static const unsigned char sm2_abg[128] = {
    /* a */
    0xFF,0xFF,0xFF,0xFE,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0x00,0x00,0x00,0x00,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFC,
    /* b */
    0x28,0xE9,0xFA,0x9E,0x9D,0x9F,0x5E,0x34,0x4D,0x5A,0x9E,0x4B,0xCF,0x65,0x09,0xA7,
    0xF3,0x97,0x89,0xF5,0x15,0xAB,0x8F,0x92,0xDD,0xBC,0xBD,0x41,0x4D,0x94,0x0E,0x93,
    /* xG */
    0x32,0xC4,0xAE,0x2C,0x1F,0x19,0x81,0x19,0x5F,0x99,0x04,0x46,0x6A,0x39,0xC9,0x94,
    0x8F,0xE3,0x0B,0xBF,0xF2,0x66,0x0B,0xE1,0x71,0x5A,0x45,0x89,0x33,0x4C,0x74,0xC7,
    /* yG */
    0xBC,0x37,0x36,0xA2,0xF4,0xF6,0x77,0x9C,0x59,0xBD,0xCE,0xE3,0x6B,0x69,0x21,0x53,
    0xD0,0xA9,0x87,0x7C,0xC6,0x2A,0x47,0x40,0x02,0xDF,0x32,0xE5,0x21,0x39,0xF0,0xA0,
};

int sm2_compute_z(const unsigned char *id, size_t idlen, const unsigned char pub[65], unsigned char z[32])
{
    if (idlen >= 8192 || pub[0] != 0x04)
        return -1;
    unsigned char entl[2] = { (unsigned char)((idlen * 8) >> 8), (unsigned char)(idlen * 8) };
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int l = 0;
    int ok = c && EVP_DigestInit_ex(c, g_st.sm3, NULL) &&
             EVP_DigestUpdate(c, entl, 2) &&
             (idlen == 0 || EVP_DigestUpdate(c, id, idlen)) &&
             EVP_DigestUpdate(c, sm2_abg, sizeof(sm2_abg)) &&
             EVP_DigestUpdate(c, pub + 1, 64) &&
             EVP_DigestFinal_ex(c, z, &l) && l == 32;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

/* read one DER INTEGER (non-negative, at most n significant bytes) into out[n] */
static int der_int(const unsigned char **pp, const unsigned char *end, unsigned char *out, size_t n)
{
    const unsigned char *p = *pp;
    size_t len, hdr;
    if (p >= end || *p != 0x02)
        return -1;
    p++;
    if (der_read_len(p, (size_t)(end - p), &len, &hdr))
        return -1;
    p += hdr;
    if (len == 0 || len > (size_t)(end - p))
        return -1;
    if (p[0] & 0x80)
        return -1;                      /* negative */
    const unsigned char *v = p;
    size_t vl = len;
    if (vl > 1 && v[0] == 0) {
        if (!(v[1] & 0x80))
            return -1;                  /* non-minimal */
        v++;
        vl--;
    }
    if (vl > n)
        return -1;
    memset(out, 0, n - vl);
    memcpy(out + n - vl, v, vl);
    *pp = p + len;
    return 0;
}

int sig_der_to_raw(const unsigned char *der, size_t derlen, unsigned char *raw, size_t n)
{
    const unsigned char *p = der, *end = der + derlen;
    size_t len, hdr;
    if (derlen < 2 || p[0] != 0x30)
        return -1;
    p++;
    if (der_read_len(p, (size_t)(end - p), &len, &hdr))
        return -1;
    p += hdr;
    if (len != (size_t)(end - p))
        return -1;
    if (der_int(&p, end, raw, n) || der_int(&p, end, raw + n, n) || p != end)
        return -1;
    return 0;
}

static size_t put_int(unsigned char *d, const unsigned char *v, size_t n)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t o = 0;
    d[o++] = 0x02;
    size_t l = n + ((v[0] & 0x80) ? 1 : 0);
    d[o++] = (unsigned char)l;
    if (v[0] & 0x80)
        d[o++] = 0;
    memcpy(d + o, v, n);
    return o + n;
}

/* n <= 66 so the whole encoding stays below 0x100 bytes; der must hold 2n + 10 bytes */
int sig_raw_to_der(const unsigned char *raw, size_t n, unsigned char *der, size_t *derlen)
{
    if (n == 0 || n > 60)
        return -1;
    unsigned char body[2 * 60 + 8];
    size_t bl = put_int(body, raw, n);
    bl += put_int(body + bl, raw + n, n);
    size_t o = 0;
    der[o++] = 0x30;
    if (bl >= 0x80)
        der[o++] = 0x81;
    der[o++] = (unsigned char)bl;
    memcpy(der + o, body, bl);
    *derlen = o + bl;
    return 0;
}
