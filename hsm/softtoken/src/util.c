/*
 * util.c - small helpers: blank-padded PKCS#11 strings (v2.40 base 3.2, "blank padded,
 * not NUL terminated"), hex, OpenSSL RAND wrappers (the only randomness source), growable
 * arrays and the two DER primitives the token needs (length octets, OCTET STRING).
 */
#include "st.h"
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_padcpy(unsigned char *dst, const char *src, size_t n)
{
    size_t l = src ? strnlen(src, n) : 0;
    memset(dst, ' ', n);
    if (l)
        memcpy(dst, src, l);
}

void st_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = 0;
}

int st_random(void *buf, size_t n)
{
    if (n == 0)
        return 0;
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int st_private_random(void *buf, size_t n)
{
    if (n == 0)
        return 0;
    return RAND_priv_bytes(buf, (int)n) == 1 ? 0 : -1;
}

void st_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("racentre-softtoken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int st_grow(void **arr, size_t *cap, size_t need, size_t elsize)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 8;
    while (nc < need)
        nc *= 2;
    void *p = realloc(*arr, nc * elsize);
    if (!p)
        return -1;
    memset((char *)p + *cap * elsize, 0, (nc - *cap) * elsize);
    *arr = p;
    *cap = nc;
    return 0;
}

int st_buf_append(unsigned char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (*len + n < *len)
        return -1;
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n)
            nc *= 2;
        unsigned char *p = OPENSSL_malloc(nc);
        if (!p)
            return -1;
        if (*buf) {
            memcpy(p, *buf, *len);
            OPENSSL_clear_free(*buf, *cap);
        }
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

/* DER length octets at p (after the tag). Sets *len and *hdr (bytes used). 0 ok. */
int der_read_len(const unsigned char *p, size_t avail, size_t *len, size_t *hdr)
{
    if (avail < 1)
        return -1;
    if (p[0] < 0x80) {
        *len = p[0];
        *hdr = 1;
        return 0;
    }
    size_t nb = p[0] & 0x7f;
    if (nb == 0 || nb > 4 || avail < 1 + nb)
        return -1;
    size_t l = 0;
    for (size_t i = 0; i < nb; i++)
        l = (l << 8) | p[1 + i];
    if (l < 0x80)
        return -1;          /* not minimal */
    *len = l;
    *hdr = 1 + nb;
    return 0;
}

int der_octet_wrap(const unsigned char *in, size_t n, unsigned char **out, size_t *outlen)
{
    unsigned char hdr[6];
    size_t h = 0;
    hdr[h++] = 0x04;
    if (n < 0x80) {
        hdr[h++] = (unsigned char)n;
    } else if (n < 0x100) {
        hdr[h++] = 0x81;
        hdr[h++] = (unsigned char)n;
    } else if (n < 0x10000) {
        hdr[h++] = 0x82;
        hdr[h++] = (unsigned char)(n >> 8);
        hdr[h++] = (unsigned char)n;
    } else {
        return -1;
    }
    *out = OPENSSL_malloc(h + n);
    if (!*out)
        return -1;
    memcpy(*out, hdr, h);
    memcpy(*out + h, in, n);
    *outlen = h + n;
    return 0;
}
