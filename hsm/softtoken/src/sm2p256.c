/*
 * sm2p256.c - sm2p256v1 point arithmetic and the SM2 schemes on it, written by hand because
 * OpenSSL 3.0 has no optimised SM2 curve (see sm2p256.h for the interface and the standards:
 * GB/T 32918.1-2016 curve and point arithmetic, .2 signature 6.1/7.1, .4 encryption 6.1/7.1
 * with the KDF of 5.4.3, .5 parameters).
 *
 * Points: Jacobian (X, Y, Z) in Montgomery form, infinity = Z 0; a = -3 doubling
 * (dbl-2001-b), mixed Jacobian+affine addition (madd-2007-bl), Jacobian addition
 * (add-2007-bl).  Exceptional cases are resolved with constant-time selects.
 *
 * k*G: a fixed-base comb in the style of OpenSSL's ecp_nistz256: 37 rows of 64 affine points
 * j * 2^(7i) * G (j = 1..64), built once under pthread_once (~2 ms), signed Booth digits of
 * 7 bits, every lookup reads the whole 64-entry row and keeps one entry with masks.  For
 * k in [1, n-1] the only exceptional additions are with infinity (digit 0, or the empty
 * accumulator): the partial sum after row i has |scalar| <= 2^(7i-1) < |digit * 2^(7i)|, and
 * in the last row the only wrap-around mod n would need k = 0 mod n (argued in full in the
 * README); both infinity cases are handled by selects.
 *
 * k*P: fixed 5-bit signed (Booth) windows over a table of 1P..16P (Jacobian), constant-time
 * lookup, 255 doublings and 52 additions whatever k is; only the final addition can meet
 * the doubling case (k = n - 2|d0|) and it computes the doubling and selects.
 *
 * Verification: s*G by the comb plus t*P by the window method, then one complete addition;
 * it only sees public values.
 */
#include "sm2p256.h"
#include "sm2p256_field.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef SM2P256_CTGRIND
#include <valgrind/memcheck.h>
#define CT_SECRET(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define CT_PUBLIC(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define CT_SECRET(p, n) ((void)(p), (void)(n))
#define CT_PUBLIC(p, n) ((void)(p), (void)(n))
#endif

typedef uint64_t u64;
typedef struct { sm2_fe X, Y, Z; } jpt;
typedef struct { sm2_fe x, y; } apt;

struct sm2p256_key {
    int refs;
    int has_priv;
    unsigned char pub[65];
    sm2_fe d;            /* d, plain, for d*C1 */
    sm2_fe dR;           /* d * R mod n */
    sm2_fe dinvR;        /* (1 + d)^-1 * R mod n */
};

static const unsigned char b_be[32] = {
    0x28,0xE9,0xFA,0x9E,0x9D,0x9F,0x5E,0x34,0x4D,0x5A,0x9E,0x4B,0xCF,0x65,0x09,0xA7,
    0xF3,0x97,0x89,0xF5,0x15,0xAB,0x8F,0x92,0xDD,0xBC,0xBD,0x41,0x4D,0x94,0x0E,0x93 };
static const unsigned char gx_be[32] = {
    0x32,0xC4,0xAE,0x2C,0x1F,0x19,0x81,0x19,0x5F,0x99,0x04,0x46,0x6A,0x39,0xC9,0x94,
    0x8F,0xE3,0x0B,0xBF,0xF2,0x66,0x0B,0xE1,0x71,0x5A,0x45,0x89,0x33,0x4C,0x74,0xC7 };
static const unsigned char gy_be[32] = {
    0xBC,0x37,0x36,0xA2,0xF4,0xF6,0x77,0x9C,0x59,0xBD,0xCE,0xE3,0x6B,0x69,0x21,0x53,
    0xD0,0xA9,0x87,0x7C,0xC6,0x2A,0x47,0x40,0x02,0xDF,0x32,0xE5,0x21,0x39,0xF0,0xA0 };

static sm2_fe b_m;                    /* b in Montgomery form */
static apt g_tab[37][64];             /* g_tab[i][j] = (j+1) * 2^(7i) * G, affine, Montgomery */
static EVP_MD *g_sm3;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_ok;

static void cleanse(void *p, size_t n) { OPENSSL_cleanse(p, n); }

/* ------------------------------------------------------------------ points */

static void pt_dbl(jpt *r, const jpt *a)
{
    sm2_fe delta, gamma, beta, alpha, t1, t2;
    fp_sqr(delta, a->Z);
    fp_sqr(gamma, a->Y);
    fp_mul(beta, a->X, gamma);
    fp_sub(t1, a->X, delta);
    fp_add(t2, a->X, delta);
    fp_mul(alpha, t1, t2);
    fp_add(t1, alpha, alpha);
    fp_add(alpha, t1, alpha);
    fp_add(t1, a->Y, a->Z);
    fp_sqr(t1, t1);
    fp_sub(t1, t1, gamma);
    fp_sub(r->Z, t1, delta);
    fp_add(beta, beta, beta);
    fp_add(beta, beta, beta);
    fp_sqr(t1, alpha);
    fp_add(t2, beta, beta);
    fp_sub(r->X, t1, t2);
    fp_sub(t1, beta, r->X);
    fp_mul(t1, alpha, t1);
    fp_sqr(gamma, gamma);
    fp_add(gamma, gamma, gamma);
    fp_add(gamma, gamma, gamma);
    fp_add(gamma, gamma, gamma);
    fp_sub(r->Y, t1, gamma);
}

static void pt_cmov(jpt *r, const jpt *a, u64 mask)
{
    fe_cmov(r->X, a->X, mask);
    fe_cmov(r->Y, a->Y, mask);
    fe_cmov(r->Z, a->Z, mask);
}

/* r = a + b, b affine; b = (0, 0) stands for infinity */
static void pt_madd(jpt *r, const jpt *a, const apt *b)
{
    sm2_fe z1z1, u2, s2, h, hh, i, j, rr, v, t;
    jpt o;
    u64 a_inf = fe_is_zero(a->Z), b_inf = fe_is_zero(b->x) & fe_is_zero(b->y);
    fp_sqr(z1z1, a->Z);
    fp_mul(u2, b->x, z1z1);
    fp_mul(s2, b->y, a->Z);
    fp_mul(s2, s2, z1z1);
    fp_sub(h, u2, a->X);
    fp_sqr(hh, h);
    fp_add(i, hh, hh);
    fp_add(i, i, i);
    fp_mul(j, h, i);
    fp_sub(rr, s2, a->Y);
    fp_add(rr, rr, rr);
    fp_mul(v, a->X, i);
    fp_sqr(o.X, rr);
    fp_sub(o.X, o.X, j);
    fp_sub(o.X, o.X, v);
    fp_sub(o.X, o.X, v);
    fp_sub(t, v, o.X);
    fp_mul(o.Y, rr, t);
    fp_mul(t, a->Y, j);
    fp_add(t, t, t);
    fp_sub(o.Y, o.Y, t);
    fp_add(o.Z, a->Z, h);
    fp_sqr(o.Z, o.Z);
    fp_sub(o.Z, o.Z, z1z1);
    fp_sub(o.Z, o.Z, hh);
    fe_cmov(o.X, b->x, a_inf);
    fe_cmov(o.Y, b->y, a_inf);
    fe_cmov(o.Z, sm2_one_p, a_inf);
    pt_cmov(&o, a, b_inf);
    *r = o;
}

/* r = a + b; complete: also right when a == b (computes the doubling and selects) */
static void pt_add(jpt *r, const jpt *a, const jpt *b, int complete)
{
    sm2_fe z1z1, z2z2, u1, u2, s1, s2, h, i, j, rr, v, t;
    jpt o;
    u64 a_inf = fe_is_zero(a->Z), b_inf = fe_is_zero(b->Z);
    fp_sqr(z1z1, a->Z);
    fp_sqr(z2z2, b->Z);
    fp_mul(u1, a->X, z2z2);
    fp_mul(u2, b->X, z1z1);
    fp_mul(s1, a->Y, b->Z);
    fp_mul(s1, s1, z2z2);
    fp_mul(s2, b->Y, a->Z);
    fp_mul(s2, s2, z1z1);
    fp_sub(h, u2, u1);
    fp_add(i, h, h);
    fp_sqr(i, i);
    fp_mul(j, h, i);
    fp_sub(rr, s2, s1);
    fp_add(rr, rr, rr);
    fp_mul(v, u1, i);
    fp_sqr(o.X, rr);
    fp_sub(o.X, o.X, j);
    fp_sub(o.X, o.X, v);
    fp_sub(o.X, o.X, v);
    fp_sub(t, v, o.X);
    fp_mul(o.Y, rr, t);
    fp_mul(t, s1, j);
    fp_add(t, t, t);
    fp_sub(o.Y, o.Y, t);
    fp_add(o.Z, a->Z, b->Z);
    fp_sqr(o.Z, o.Z);
    fp_sub(o.Z, o.Z, z1z1);
    fp_sub(o.Z, o.Z, z2z2);
    fp_mul(o.Z, o.Z, h);
    if (complete) {
        jpt d;
        u64 same = fe_is_zero(h) & fe_is_zero(rr) & ~a_inf & ~b_inf;
        pt_dbl(&d, a);
        pt_cmov(&o, &d, same);
    }
    pt_cmov(&o, b, a_inf);
    pt_cmov(&o, a, b_inf);
    *r = o;
}

/* affine, Montgomery form; infinity -> (0, 0) */
static void pt_to_affine(apt *r, const jpt *a)
{
    sm2_fe zi, zi2;
    fp_inv(zi, a->Z);
    fp_sqr(zi2, zi);
    fp_mul(r->x, a->X, zi2);
    fp_mul(zi2, zi2, zi);
    fp_mul(r->y, a->Y, zi2);
}

/* y^2 = x^3 - 3x + b, inputs Montgomery form; mask */
static u64 pt_on_curve(const apt *p)
{
    sm2_fe l, r, t;
    fp_sqr(l, p->y);
    fp_sqr(r, p->x);
    fp_mul(r, r, p->x);
    fp_add(t, p->x, p->x);
    fp_add(t, t, p->x);
    fp_sub(r, r, t);
    fp_add(r, r, b_m);
    return fe_eq(l, r);
}

/* 04||X||Y -> affine Montgomery; 0 if a valid point (coordinates < p, on the curve) */
static int pt_decode(apt *r, const unsigned char in[65])
{
    sm2_fe x, y;
    if (in[0] != 0x04)
        return -1;
    fe_from_be(x, in + 1);
    fe_from_be(y, in + 33);
    if (!(fe_lt(x, sm2_p) & fe_lt(y, sm2_p)))
        return -1;
    fp_to_mont(r->x, x);
    fp_to_mont(r->y, y);
    return pt_on_curve(r) ? 0 : -1;
}

static void pt_encode(unsigned char out[65], const apt *p)
{
    sm2_fe t;
    out[0] = 0x04;
    fp_from_mont(t, p->x);
    fe_to_be(out + 1, t);
    fp_from_mont(t, p->y);
    fe_to_be(out + 33, t);
}

/* ------------------------------------------------------------------ tables */

static void batch_affine(apt *out, const jpt *in, int n)
{
    sm2_fe acc[64], inv, zi, zi2;
    memcpy(acc[0], in[0].Z, sizeof(sm2_fe));
    for (int i = 1; i < n; i++)
        fp_mul(acc[i], acc[i - 1], in[i].Z);
    fp_inv(inv, acc[n - 1]);
    for (int i = n - 1; i >= 0; i--) {
        if (i > 0) {
            fp_mul(zi, inv, acc[i - 1]);
            fp_mul(inv, inv, in[i].Z);
        } else {
            memcpy(zi, inv, sizeof(zi));
        }
        fp_sqr(zi2, zi);
        fp_mul(out[i].x, in[i].X, zi2);
        fp_mul(zi2, zi2, zi);
        fp_mul(out[i].y, in[i].Y, zi2);
    }
}

static void init_once(void)
{
    sm2_fe t;
    jpt base, row[64];
    fe_from_be(t, b_be);
    fp_to_mont(b_m, t);
    fe_from_be(t, gx_be);
    fp_to_mont(base.X, t);
    fe_from_be(t, gy_be);
    fp_to_mont(base.Y, t);
    memcpy(base.Z, sm2_one_p, sizeof(sm2_fe));
    for (int i = 0; i < 37; i++) {
        row[0] = base;
        pt_dbl(&row[1], &base);
        for (int j = 2; j < 64; j++)
            pt_add(&row[j], &row[j - 1], &base, 1);
        batch_affine(g_tab[i], row, 64);
        pt_dbl(&base, &row[63]);     /* 128 * base = 2^7 * base */
    }
    g_sm3 = EVP_MD_fetch(NULL, "SM3", NULL);
    g_init_ok = g_sm3 != NULL;
}

int sm2p256_init(void)
{
    pthread_once(&g_once, init_once);
    return g_init_ok ? 0 : -1;
}

/* ------------------------------------------------------------------ scalar multiplication */

static unsigned booth7(unsigned in)
{
    unsigned s = ~((in >> 7) - 1), d = (1u << 8) - in - 1;
    d = (d & s) | (in & ~s);
    d = (d >> 1) + (d & 1);
    return (d << 1) + (s & 1);
}

static unsigned booth5(unsigned in)
{
    unsigned s = ~((in >> 5) - 1), d = (1u << 6) - in - 1;
    d = (d & s) | (in & ~s);
    d = (d >> 1) + (d & 1);
    return (d << 1) + (s & 1);
}

static inline u64 mask_eq(unsigned a, unsigned b)
{
    u64 x = (u64)(a ^ b);
    return ((x | ((u64)0 - x)) >> 63) - 1;
}

/* scalar (plain limbs) -> 34 little-endian bytes (the top ones zero) */
static void sc_bytes_le(unsigned char out[34], const sm2_fe k)
{
    for (int i = 0; i < 32; i++)
        out[i] = (unsigned char)(k[i / 8] >> (8 * (i % 8)));
    out[32] = out[33] = 0;
}

static void select_g(apt *r, int row, unsigned idx)
{
    memset(r, 0, sizeof(*r));
    for (unsigned j = 0; j < 64; j++) {
        u64 m = mask_eq(idx, j + 1);
        fe_cmov(r->x, g_tab[row][j].x, m);
        fe_cmov(r->y, g_tab[row][j].y, m);
    }
}

/* r = k*G for k in [1, n-1] (plain limbs) */
static void mul_g(jpt *r, const sm2_fe k)
{
    unsigned char s[34];
    apt t;
    sm2_fe ny;
    sc_bytes_le(s, k);
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < 37; i++) {
        unsigned idx = 7 * i, w;
        if (i == 0)
            w = ((unsigned)s[0] << 1) & 0xff;
        else
            w = (((unsigned)s[(idx - 1) / 8] | ((unsigned)s[(idx - 1) / 8 + 1] << 8)) >> ((idx - 1) % 8)) & 0xff;
        w = booth7(w);
        select_g(&t, i, w >> 1);
        fp_neg(ny, t.y);
        fe_cmov(t.y, ny, (u64)0 - (w & 1));
        pt_madd(r, r, &t);
    }
    cleanse(s, sizeof(s));
    cleanse(&t, sizeof(t));
}

static void select_w5(jpt *r, const jpt tab[16], unsigned idx)
{
    memset(r, 0, sizeof(*r));
    for (unsigned j = 0; j < 16; j++)
        pt_cmov(r, &tab[j], mask_eq(idx, j + 1));
}

/* r = k*P, P affine (valid point), k in [1, n-1] (plain limbs) */
static void mul_var(jpt *r, const apt *p, const sm2_fe k)
{
    unsigned char s[34];
    jpt tab[16], t;
    sm2_fe ny;
    memcpy(tab[0].X, p->x, sizeof(sm2_fe));
    memcpy(tab[0].Y, p->y, sizeof(sm2_fe));
    memcpy(tab[0].Z, sm2_one_p, sizeof(sm2_fe));
    pt_dbl(&tab[1], &tab[0]);
    for (int j = 2; j < 16; j++)
        pt_add(&tab[j], &tab[j - 1], &tab[0], 1);
    sc_bytes_le(s, k);
    unsigned idx = 255, w;
    w = ((unsigned)s[(idx - 1) / 8] >> ((idx - 1) % 8)) & 0x3f;
    select_w5(r, tab, booth5(w) >> 1);
    while (idx >= 5) {
        if (idx != 255) {
            unsigned off = (idx - 1) / 8;
            w = (((unsigned)s[off] | ((unsigned)s[off + 1] << 8)) >> ((idx - 1) % 8)) & 0x3f;
            w = booth5(w);
            select_w5(&t, tab, w >> 1);
            fp_neg(ny, t.Y);
            fe_cmov(t.Y, ny, (u64)0 - (w & 1));
            pt_add(r, r, &t, 0);
        }
        idx -= 5;
        for (int j = 0; j < 5; j++)
            pt_dbl(r, r);
    }
    w = booth5(((unsigned)s[0] << 1) & 0x3f);
    select_w5(&t, tab, w >> 1);
    fp_neg(ny, t.Y);
    fe_cmov(t.Y, ny, (u64)0 - (w & 1));
    pt_add(r, r, &t, 1);
    cleanse(s, sizeof(s));
    cleanse(tab, sizeof(tab));
    cleanse(&t, sizeof(t));
}

/* out = 04 || x || y of k*G; the Jacobian and affine intermediates are cleansed (k is the caller's) */
static void mul_g_encode(unsigned char out[65], const sm2_fe k)
{
    jpt r;
    apt a;
    mul_g(&r, k);
    pt_to_affine(&a, &r);
    pt_encode(out, &a);
    cleanse(&r, sizeof(r));
    cleanse(&a, sizeof(a));
}

int sm2p256_base_mul(unsigned char out[65], const unsigned char kb[32])
{
    sm2_fe k;
    if (sm2p256_init())
        return -1;
    fe_from_be(k, kb);
    fn_reduce_once(k, k);
    u64 zero = fe_is_zero(k);
    CT_PUBLIC(&zero, sizeof(zero));
    if (zero)
        return -1;
    mul_g_encode(out, k);
    cleanse(k, sizeof(k));
    return 0;
}

int sm2p256_point_mul(unsigned char out[65], const unsigned char pt[65], const unsigned char kb[32])
{
    sm2_fe k;
    jpt r;
    apt a, p;
    if (sm2p256_init() || pt_decode(&p, pt))
        return -1;
    fe_from_be(k, kb);
    fn_reduce_once(k, k);
    u64 zero = fe_is_zero(k);
    CT_PUBLIC(&zero, sizeof(zero));
    if (zero)
        return -1;
    mul_var(&r, &p, k);
    pt_to_affine(&a, &r);
    pt_encode(out, &a);
    cleanse(k, sizeof(k));
    cleanse(&r, sizeof(r));
    cleanse(&a, sizeof(a));
    return 0;
}

int sm2p256_point_check(const unsigned char pub[65])
{
    apt p;
    if (sm2p256_init())
        return -1;
    return pt_decode(&p, pub);   /* (0,0) is not on the curve (b != 0): infinity is excluded */
}

/* ------------------------------------------------------------------ keys and nonces */

/* uniform in [1, n - off] (off 1: nonces, off 2: private keys) by rejection; plain limbs */
static int rand_scalar(sm2_fe k, int off)
{
    unsigned char b[32];
    sm2_fe lim;
    memcpy(lim, sm2_n, sizeof(lim));
    lim[0] -= (u64)(off - 1);              /* the scalar must be < n - off + 1 */
    for (int tries = 0; tries < 64; tries++) {
        if (RAND_priv_bytes(b, 32) != 1)
            break;
        CT_SECRET(b, 32);
        fe_from_be(k, b);
        u64 ok = ~fe_is_zero(k) & fe_lt(k, lim);
        CT_PUBLIC(&ok, sizeof(ok));
        if (ok) {
            cleanse(b, sizeof(b));
            return 0;
        }
    }
    cleanse(b, sizeof(b));
    cleanse(k, sizeof(sm2_fe));
    return -1;
}

/* all-ones when d is a valid private key, d in [1, n - 2] (GB/T 32918.1 6.1), else 0; constant time */
static u64 priv_in_range(const sm2_fe d)
{
    sm2_fe lim;
    memcpy(lim, sm2_n, sizeof(lim));
    lim[0] -= 1;                           /* d < n - 1 */
    return ~fe_is_zero(d) & fe_lt(d, lim);
}

static int key_fill_priv(sm2p256_key *key, const sm2_fe d)
{
    sm2_fe t;
    memcpy(key->d, d, sizeof(sm2_fe));
    fn_to_mont(key->dR, d);
    fn_add(t, d, (const u64[4]){ 1, 0, 0, 0 });
    fn_to_mont(t, t);
    fn_inv_mont(key->dinvR, t);
    cleanse(t, sizeof(t));
    key->has_priv = 1;
    return 0;
}

sm2p256_key *sm2p256_key_new(const unsigned char *d32, const unsigned char pub[65])
{
    if (sm2p256_init() || sm2p256_point_check(pub))
        return NULL;
    sm2p256_key *k = OPENSSL_zalloc(sizeof(*k));
    if (!k)
        return NULL;
    k->refs = 1;
    memcpy(k->pub, pub, 65);
    if (d32) {
        sm2_fe d;
        fe_from_be(d, d32);
        u64 ok = priv_in_range(d);
        CT_PUBLIC(&ok, sizeof(ok));
        if (!ok) {
            cleanse(d, sizeof(d));
            OPENSSL_clear_free(k, sizeof(*k));
            return NULL;
        }
        /* the stored point must be d*G: a mismatch means damaged or forged key material */
        unsigned char q[65];
        mul_g_encode(q, d);
        int same = CRYPTO_memcmp(q, pub, 65) == 0;
        CT_PUBLIC(&same, sizeof(same));
        if (!same) {
            cleanse(d, sizeof(d));
            OPENSSL_clear_free(k, sizeof(*k));
            return NULL;
        }
        key_fill_priv(k, d);
        cleanse(d, sizeof(d));
    }
    return k;
}

void sm2p256_key_ref(sm2p256_key *k)
{
    if (k)
        __atomic_add_fetch(&k->refs, 1, __ATOMIC_RELAXED);
}

void sm2p256_key_free(sm2p256_key *k)
{
    if (k && __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) == 0)
        OPENSSL_clear_free(k, sizeof(*k));
}

const unsigned char *sm2p256_key_pub(const sm2p256_key *k) { return k->pub; }
int sm2p256_key_has_priv(const sm2p256_key *k) { return k->has_priv; }

int sm2p256_pub_from_priv(const unsigned char d32[32], unsigned char pub[65])
{
    sm2_fe d;
    if (sm2p256_init())
        return -1;
    fe_from_be(d, d32);
    u64 ok = priv_in_range(d);
    CT_PUBLIC(&ok, sizeof(ok));
    if (!ok) {
        cleanse(d, sizeof(d));
        return -1;
    }
    mul_g_encode(pub, d);
    CT_PUBLIC(pub, 65);
    cleanse(d, sizeof(d));
    return 0;
}

int sm2p256_keygen(unsigned char d32[32], unsigned char pub[65])
{
    sm2_fe d;
    if (sm2p256_init() || rand_scalar(d, 2))
        return -1;
    mul_g_encode(pub, d);
    CT_PUBLIC(pub, 65);
    fe_to_be(d32, d);
    cleanse(d, sizeof(d));
    return 0;
}

/* ------------------------------------------------------------------ signature (GB/T 32918.2) */

/* one attempt with nonce k; 0 ok, 1 retry (r = 0, r + k = n or s = 0) */
static int sign_k(const sm2p256_key *key, const sm2_fe e, const sm2_fe k, unsigned char sig[64])
{
    jpt R;
    apt a;
    sm2_fe x, r, t, s;
    mul_g(&R, k);
    pt_to_affine(&a, &R);
    fp_from_mont(x, a.x);
    fn_reduce_once(x, x);                  /* x1 < p < 2n */
    fn_add(r, e, x);                       /* r = (e + x1) mod n */
    CT_PUBLIC(r, sizeof(r));
    fn_add(t, r, k);
    u64 bad = fe_is_zero(r) | fe_is_zero(t);
    CT_PUBLIC(&bad, sizeof(bad));
    if (bad)
        goto retry;
    fn_mul(t, r, key->dR);                 /* r*d */
    fn_sub(t, k, t);                       /* k - r*d */
    fn_mul(s, t, key->dinvR);              /* (1+d)^-1 (k - r*d) */
    CT_PUBLIC(s, sizeof(s));
    if (fe_is_zero(s))
        goto retry;
    fe_to_be(sig, r);
    fe_to_be(sig + 32, s);
    cleanse(&R, sizeof(R));
    cleanse(&a, sizeof(a));
    cleanse(x, sizeof(x));
    cleanse(t, sizeof(t));
    return 0;
retry:
    cleanse(&R, sizeof(R));
    cleanse(&a, sizeof(a));
    cleanse(x, sizeof(x));
    cleanse(t, sizeof(t));
    return 1;
}

int sm2p256_sign(const sm2p256_key *key, const unsigned char eb[32], unsigned char sig[64])
{
    sm2_fe e, k;
    if (!key || !key->has_priv || sm2p256_init())
        return -1;
    fe_from_be(e, eb);
    fn_reduce_once(e, e);
    for (int tries = 0; tries < 64; tries++) {
        if (rand_scalar(k, 1))
            return -1;
        int rc = sign_k(key, e, k, sig);
        cleanse(k, sizeof(k));
        if (rc == 0)
            return 0;
    }
    return -1;
}

int sm2p256_sign_with_k(const sm2p256_key *key, const unsigned char eb[32], const unsigned char kb[32],
                        unsigned char sig[64])
{
    sm2_fe e, k;
    if (!key || !key->has_priv || sm2p256_init())
        return -1;
    fe_from_be(e, eb);
    fn_reduce_once(e, e);
    fe_from_be(k, kb);
    if (fe_is_zero(k) || !fe_lt(k, sm2_n))
        return -1;
    int rc = sign_k(key, e, k, sig);
    cleanse(k, sizeof(k));
    return rc ? -1 : 0;
}

int sm2p256_verify(const unsigned char pub[65], const unsigned char eb[32], const unsigned char sig[64])
{
    sm2_fe e, r, s, t, x;
    apt p, a;
    jpt A, B;
    if (sm2p256_init() || pt_decode(&p, pub))
        return 0;
    fe_from_be(r, sig);
    fe_from_be(s, sig + 32);
    if (fe_is_zero(r) || fe_is_zero(s) || !fe_lt(r, sm2_n) || !fe_lt(s, sm2_n))
        return 0;
    fe_from_be(e, eb);
    fn_reduce_once(e, e);
    fn_add(t, r, s);
    if (fe_is_zero(t))
        return 0;
    mul_g(&A, s);
    mul_var(&B, &p, t);
    pt_add(&A, &A, &B, 1);
    if (fe_is_zero(A.Z))
        return 0;
    pt_to_affine(&a, &A);
    fp_from_mont(x, a.x);
    fn_reduce_once(x, x);
    fn_add(t, e, x);
    return fe_eq(t, r) ? 1 : 0;
}

/* ------------------------------------------------------------------ encryption (GB/T 32918.4) */

/* KDF of 5.4.3 with SM3: out = SM3(z || ct)_1 || SM3(z || ct)_2 || ..., ct 32-bit big-endian from 1 */
static int kdf(const unsigned char z[64], unsigned char *out, size_t len)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char h[32];
    int ok = c != NULL;
    for (uint32_t ct = 1; ok && len; ct++) {
        unsigned char cb[4] = { (unsigned char)(ct >> 24), (unsigned char)(ct >> 16), (unsigned char)(ct >> 8),
                                (unsigned char)ct };
        unsigned int hl = 0;
        ok = EVP_DigestInit_ex(c, g_sm3, NULL) && EVP_DigestUpdate(c, z, 64) && EVP_DigestUpdate(c, cb, 4) &&
             EVP_DigestFinal_ex(c, h, &hl) && hl == 32;
        size_t n = len < 32 ? len : 32;
        if (ok)
            memcpy(out, h, n);
        out += n;
        len -= n;
    }
    EVP_MD_CTX_free(c);
    cleanse(h, sizeof(h));
    return ok ? 0 : -1;
}

/* C3 = SM3(x2 || M || y2) */
static int c3_hash(const unsigned char xy[64], const unsigned char *m, size_t ml, unsigned char out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int hl = 0;
    int ok = c && EVP_DigestInit_ex(c, g_sm3, NULL) && EVP_DigestUpdate(c, xy, 32) &&
             EVP_DigestUpdate(c, m, ml) && EVP_DigestUpdate(c, xy + 32, 32) &&
             EVP_DigestFinal_ex(c, out, &hl) && hl == 32;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

static size_t der_len_size(size_t l)
{
    return l < 0x80 ? 1 : l < 0x100 ? 2 : l < 0x10000 ? 3 : l < 0x1000000 ? 4 : 5;
}

static size_t der_put_len(unsigned char *p, size_t l)
{
    size_t n = der_len_size(l);
    if (n == 1) {
        p[0] = (unsigned char)l;
        return 1;
    }
    p[0] = (unsigned char)(0x80 | (n - 1));
    for (size_t i = 1; i < n; i++)
        p[i] = (unsigned char)(l >> (8 * (n - 1 - i)));
    return n;
}

/* minimal DER INTEGER of a non-negative 32-byte value */
static size_t der_put_int(unsigned char *p, const unsigned char v[32])
{
    size_t i = 0;
    while (i < 31 && v[i] == 0)
        i++;
    size_t l = 32 - i, pad = (v[i] & 0x80) ? 1 : 0, o = 0;
    p[o++] = 0x02;
    p[o++] = (unsigned char)(l + pad);
    if (pad)
        p[o++] = 0;
    memcpy(p + o, v + i, l);
    return o + l;
}

/* the bound OpenSSL 3.0 reports (ossl_sm2_ciphertext_size): both INTEGERs at 33 bytes */
size_t sm2p256_cipher_bound(size_t mlen)
{
    size_t body = 2 * (1 + 1 + 33) + (1 + 1 + 32) + (1 + der_len_size(mlen) + mlen);
    return 1 + der_len_size(body) + body;
}

int sm2p256_encrypt(const unsigned char pub[65], const unsigned char *m, size_t mlen, unsigned char *out,
                    size_t *outl)
{
    apt p, a;
    jpt R;
    sm2_fe k;
    unsigned char c1[65], xy[65], c3[32], *t = NULL;
    int rc = -1;
    if (mlen == 0 || mlen > ((size_t)1 << 30) || sm2p256_init() || pt_decode(&p, pub))
        return -1;
    size_t bound = sm2p256_cipher_bound(mlen);
    if (*outl < bound) {
        *outl = bound;
        return -2;
    }
    if (!(t = OPENSSL_malloc(mlen)))
        return -1;
    for (int tries = 0; tries < 64; tries++) {
        if (rand_scalar(k, 1))
            goto done;
        mul_g(&R, k);                            /* C1 = kG */
        pt_to_affine(&a, &R);
        pt_encode(c1, &a);
        CT_PUBLIC(c1, 65);
        mul_var(&R, &p, k);                      /* (x2, y2) = k P_B; h = 1 so S = P_B != O */
        pt_to_affine(&a, &R);
        pt_encode(xy, &a);
        cleanse(k, sizeof(k));
        if (kdf(xy + 1, t, mlen))
            goto done;
        unsigned char acc = 0;
        for (size_t i = 0; i < mlen; i++)
            acc |= t[i];
        CT_PUBLIC(&acc, 1);
        if (acc)
            break;
        if (tries == 63)
            goto done;
    }
    if (c3_hash(xy + 1, m, mlen, c3))
        goto done;
    CT_PUBLIC(c3, 32);
    size_t body = 0;
    unsigned char hdr[16];
    /* body: INTEGER x, INTEGER y, OCTET STRING c3, OCTET STRING c2 */
    unsigned char ints[2 * 35];
    size_t il = der_put_int(ints, c1 + 1);
    il += der_put_int(ints + il, c1 + 33);
    body = il + 2 + 32 + 1 + der_len_size(mlen) + mlen;
    size_t o = 0;
    hdr[o++] = 0x30;
    o += der_put_len(hdr + o, body);
    memcpy(out, hdr, o);
    memcpy(out + o, ints, il);
    o += il;
    out[o++] = 0x04;
    out[o++] = 32;
    memcpy(out + o, c3, 32);
    o += 32;
    out[o++] = 0x04;
    o += der_put_len(out + o, mlen);
    for (size_t i = 0; i < mlen; i++)
        out[o + i] = m[i] ^ t[i];
    CT_PUBLIC(out + o, mlen);
    o += mlen;
    *outl = o;
    rc = 0;
done:
    cleanse(k, sizeof(k));
    cleanse(&R, sizeof(R));
    cleanse(&a, sizeof(a));
    cleanse(xy, sizeof(xy));
    OPENSSL_clear_free(t, mlen);
    return rc;
}

/* strict DER: tag, minimal definite length; returns the content and advances */
static int der_get(const unsigned char **pp, const unsigned char *end, int tag, const unsigned char **v,
                   size_t *vl)
{
    const unsigned char *p = *pp;
    if (end - p < 2 || p[0] != tag)
        return -1;
    size_t l = p[1];
    p += 2;
    if (l & 0x80) {
        size_t n = l & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - p) < n || p[0] == 0)
            return -1;
        l = 0;
        for (size_t i = 0; i < n; i++)
            l = (l << 8) | p[i];
        p += n;
        if (l < 0x80 || der_len_size(l) != n + 1)
            return -1;
    }
    if (l > (size_t)(end - p))
        return -1;
    *v = p;
    *vl = l;
    *pp = p + l;
    return 0;
}

static int der_get_int32(const unsigned char **pp, const unsigned char *end, unsigned char out[32])
{
    const unsigned char *v;
    size_t l;
    if (der_get(pp, end, 0x02, &v, &l) || l == 0 || (v[0] & 0x80))
        return -1;
    if (l > 1 && v[0] == 0) {
        if (!(v[1] & 0x80))
            return -1;
        v++;
        l--;
    }
    if (l > 32)
        return -1;
    memset(out, 0, 32 - l);
    memcpy(out + 32 - l, v, l);
    return 0;
}

static int parse_cipher(const unsigned char *c, size_t clen, unsigned char c1[65], const unsigned char **c3,
                        const unsigned char **c2, size_t *c2l)
{
    const unsigned char *p = c, *end = c + clen, *v, *h;
    size_t l, hl;
    if (der_get(&p, end, 0x30, &v, &l) || p != end)
        return -1;
    p = v;
    end = v + l;
    c1[0] = 0x04;
    if (der_get_int32(&p, end, c1 + 1) || der_get_int32(&p, end, c1 + 33) ||
        der_get(&p, end, 0x04, &h, &hl) || hl != 32 || der_get(&p, end, 0x04, c2, c2l) || p != end || *c2l == 0)
        return -1;
    *c3 = h;
    return 0;
}

int sm2p256_plain_len(const unsigned char *c, size_t clen, size_t *mlen)
{
    unsigned char c1[65];
    const unsigned char *c3, *c2;
    if (parse_cipher(c, clen, c1, &c3, &c2, mlen))
        return -1;
    return 0;
}

int sm2p256_decrypt(const sm2p256_key *key, const unsigned char *c, size_t clen, unsigned char *out,
                    size_t *outl)
{
    unsigned char c1[65], xy[65], u[32];
    const unsigned char *c3, *c2;
    size_t ml;
    apt p, a;
    jpt R;
    int rc = -1;
    if (!key || !key->has_priv || sm2p256_init() || parse_cipher(c, clen, c1, &c3, &c2, &ml))
        return -1;
    if (*outl < ml) {
        *outl = ml;
        return -2;
    }
    if (pt_decode(&p, c1))                        /* B1: C1 on the curve; h = 1, S = C1 != O */
        return -1;
    mul_var(&R, &p, key->d);                      /* B3: (x2, y2) = d C1 */
    pt_to_affine(&a, &R);
    pt_encode(xy, &a);
    if (kdf(xy + 1, out, ml))                     /* B4: t = KDF(x2 || y2, klen) */
        goto fail;
    unsigned char acc = 0;
    for (size_t i = 0; i < ml; i++)
        acc |= out[i];
    CT_PUBLIC(&acc, 1);
    if (!acc)
        goto fail;
    for (size_t i = 0; i < ml; i++)               /* B5: M' = C2 xor t */
        out[i] ^= c2[i];
    if (c3_hash(xy + 1, out, ml, u))              /* B6: u = SM3(x2 || M' || y2) = C3 ? */
        goto fail;
    int eq = CRYPTO_memcmp(u, c3, 32) == 0;
    CT_PUBLIC(&eq, sizeof(eq));
    if (!eq)
        goto fail;
    *outl = ml;
    rc = 0;
    goto done;
fail:
    cleanse(out, ml);
done:
    cleanse(&R, sizeof(R));
    cleanse(&a, sizeof(a));
    cleanse(xy, sizeof(xy));
    cleanse(u, sizeof(u));
    return rc;
}
