/*
 * sm2p256_field.c - constant-time arithmetic modulo the sm2p256v1 prime
 *   p = FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF 00000000 FFFFFFFF FFFFFFFF
 * and the group order
 *   n = FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF 7203DF6B 21C6052B 53BBF409 39D54123
 * (GB/T 32918.5-2017 clause 5).  Hand-written because OpenSSL 3.0 has no optimised SM2
 * field code (see sm2p256.c).  4 x 64-bit limbs, word-by-word Montgomery multiplication
 * (CIOS) with unsigned __int128; p = -1 mod 2^64 so -p^-1 mod 2^64 = 1.  No branch and no
 * memory index depends on an operand: reductions select with masks.
 */
#include "sm2p256_field.h"
#include <string.h>

typedef unsigned __int128 u128;
typedef uint64_t u64;

const sm2_fe sm2_p = { 0xffffffffffffffffULL, 0xffffffff00000000ULL, 0xffffffffffffffffULL, 0xfffffffeffffffffULL };
const sm2_fe sm2_n = { 0x53bbf40939d54123ULL, 0x7203df6b21c6052bULL, 0xffffffffffffffffULL, 0xfffffffeffffffffULL };
const sm2_fe sm2_one_p = { 0x0000000000000001ULL, 0x00000000ffffffffULL, 0x0000000000000000ULL, 0x0000000100000000ULL };
const sm2_fe sm2_one_n = { 0xac440bf6c62abeddULL, 0x8dfc2094de39fad4ULL, 0x0000000000000000ULL, 0x0000000100000000ULL };
static const sm2_fe rr_p = { 0x0000000200000003ULL, 0x00000002ffffffffULL, 0x0000000100000001ULL, 0x0000000400000002ULL };
static const sm2_fe rr_n = { 0x901192af7c114f20ULL, 0x3464504ade6fa2faULL, 0x620fc84c3affe0d4ULL, 0x1eb5e412a22b3d3bULL };
static const u64 n0_n = 0x327f9e8872350975ULL;   /* -n^-1 mod 2^64 */

/* r = (hi:a) - m if that is non-negative, else a; requires (hi:a) < 2m */
static inline void cond_sub(sm2_fe r, const u64 a[4], u64 hi, const sm2_fe m)
{
    u64 t[4], b = 0;
    for (int i = 0; i < 4; i++) {
        u128 d = (u128)a[i] - m[i] - b;
        t[i] = (u64)d;
        b = (u64)(d >> 64) & 1;
    }
    u64 use_t = (u64)0 - ((hi | (b ^ 1)) & 1);
    for (int i = 0; i < 4; i++)
        r[i] = (t[i] & use_t) | (a[i] & ~use_t);
}

static inline void mont_mul(sm2_fe r, const sm2_fe a, const sm2_fe b, const sm2_fe m, u64 n0)
{
    u64 t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5;
    for (int i = 0; i < 4; i++) {
        u64 bi = b[i];
        u128 c = (u128)a[0] * bi + t0;
        t0 = (u64)c;
        c = (c >> 64) + (u128)a[1] * bi + t1;
        t1 = (u64)c;
        c = (c >> 64) + (u128)a[2] * bi + t2;
        t2 = (u64)c;
        c = (c >> 64) + (u128)a[3] * bi + t3;
        t3 = (u64)c;
        c = (c >> 64) + t4;
        t4 = (u64)c;
        t5 = (u64)(c >> 64);
        u64 q = t0 * n0;
        c = ((u128)q * m[0] + t0) >> 64;
        c += (u128)q * m[1] + t1;
        t0 = (u64)c;
        c = (c >> 64) + (u128)q * m[2] + t2;
        t1 = (u64)c;
        c = (c >> 64) + (u128)q * m[3] + t3;
        t2 = (u64)c;
        c = (c >> 64) + t4;
        t3 = (u64)c;
        t4 = t5 + (u64)(c >> 64);
    }
    u64 t[4] = { t0, t1, t2, t3 };
    cond_sub(r, t, t4, m);
}

static inline void mod_add(sm2_fe r, const sm2_fe a, const sm2_fe b, const sm2_fe m)
{
    u64 t[4], c = 0;
    for (int i = 0; i < 4; i++) {
        u128 s = (u128)a[i] + b[i] + c;
        t[i] = (u64)s;
        c = (u64)(s >> 64);
    }
    cond_sub(r, t, c, m);
}

static inline void mod_sub(sm2_fe r, const sm2_fe a, const sm2_fe b, const sm2_fe m)
{
    u64 t[4], bw = 0;
    for (int i = 0; i < 4; i++) {
        u128 d = (u128)a[i] - b[i] - bw;
        t[i] = (u64)d;
        bw = (u64)(d >> 64) & 1;
    }
    u64 mask = (u64)0 - bw, c = 0;
    for (int i = 0; i < 4; i++) {
        u128 s = (u128)t[i] + (m[i] & mask) + c;
        r[i] = (u64)s;
        c = (u64)(s >> 64);
    }
}

void fp_to_mont(sm2_fe r, const sm2_fe a) { fp_mul(r, a, rr_p); }
void fp_from_mont(sm2_fe r, const sm2_fe a)
{
    static const sm2_fe one = { 1, 0, 0, 0 };
    fp_mul(r, a, one);
}

static void fp_sqr_n(sm2_fe r, const sm2_fe a, int n)
{
    fp_sqr(r, a);
    while (--n > 0)
        fp_sqr(r, r);
}

/* a^(p-2) by a fixed addition chain; p-2 = 1^31 0 1^128 0^32 1^32 1^30 0 1 (bits, top first).
 * xk below is a^(2^k - 1). */
void fp_inv(sm2_fe r, const sm2_fe a)
{
    sm2_fe x2, x3, x6, x12, x15, x30, x31, x32, x64, x128, t;
    fp_sqr(t, a);
    fp_mul(x2, t, a);
    fp_sqr(t, x2);
    fp_mul(x3, t, a);
    fp_sqr_n(t, x3, 3);
    fp_mul(x6, t, x3);
    fp_sqr_n(t, x6, 6);
    fp_mul(x12, t, x6);
    fp_sqr_n(t, x12, 3);
    fp_mul(x15, t, x3);
    fp_sqr_n(t, x15, 15);
    fp_mul(x30, t, x15);
    fp_sqr(t, x30);
    fp_mul(x31, t, a);
    fp_sqr_n(t, x30, 2);
    fp_mul(x32, t, x2);
    fp_sqr_n(t, x32, 32);
    fp_mul(x64, t, x32);
    fp_sqr_n(t, x64, 64);
    fp_mul(x128, t, x64);
    fp_sqr_n(t, x31, 1 + 128);
    fp_mul(t, t, x128);
    fp_sqr_n(t, t, 32 + 32);
    fp_mul(t, t, x32);
    fp_sqr_n(t, t, 30);
    fp_mul(t, t, x30);
    fp_sqr_n(t, t, 2);
    fp_mul(r, t, a);
}

void fn_mul(sm2_fe r, const sm2_fe a, const sm2_fe b) { mont_mul(r, a, b, sm2_n, n0_n); }
void fn_add(sm2_fe r, const sm2_fe a, const sm2_fe b) { mod_add(r, a, b, sm2_n); }
void fn_sub(sm2_fe r, const sm2_fe a, const sm2_fe b) { mod_sub(r, a, b, sm2_n); }
void fn_to_mont(sm2_fe r, const sm2_fe a) { mont_mul(r, a, rr_n, sm2_n, n0_n); }
void fn_reduce_once(sm2_fe r, const sm2_fe a) { cond_sub(r, a, 0, sm2_n); }

/* a^(n-2) with a fixed 4-bit window; the exponent is public, the base is not */
void fn_inv_mont(sm2_fe r, const sm2_fe a)
{
    sm2_fe tab[16], acc;
    memcpy(tab[0], sm2_one_n, sizeof(sm2_fe));
    memcpy(tab[1], a, sizeof(sm2_fe));
    for (int i = 2; i < 16; i++)
        fn_mul(tab[i], tab[i - 1], a);
    sm2_fe e;
    memcpy(e, sm2_n, sizeof(e));
    e[0] -= 2;                               /* n - 2; n[0] > 2, no borrow */
    memcpy(acc, sm2_one_n, sizeof(acc));
    for (int i = 63; i >= 0; i--) {
        for (int j = 0; j < 4; j++)
            fn_mul(acc, acc, acc);
        fn_mul(acc, acc, tab[(e[i / 16] >> (4 * (i % 16))) & 15]);
    }
    memcpy(r, acc, sizeof(acc));
    memset(tab, 0, sizeof(tab));
    memset(acc, 0, sizeof(acc));
    __asm__ __volatile__("" : : "r"(tab), "r"(acc) : "memory");
}

uint64_t fe_is_zero(const sm2_fe a)
{
    u64 x = a[0] | a[1] | a[2] | a[3];
    return ((x | ((u64)0 - x)) >> 63) - 1;
}

uint64_t fe_eq(const sm2_fe a, const sm2_fe b)
{
    sm2_fe d = { a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3] };
    return fe_is_zero(d);
}

uint64_t fe_lt(const sm2_fe a, const sm2_fe b)
{
    u64 bw = 0;
    for (int i = 0; i < 4; i++) {
        u128 d = (u128)a[i] - b[i] - bw;
        bw = (u64)(d >> 64) & 1;
    }
    return (u64)0 - bw;
}


void fe_from_be(sm2_fe r, const unsigned char in[32])
{
    for (int i = 0; i < 4; i++) {
        u64 w = 0;
        for (int j = 0; j < 8; j++)
            w = (w << 8) | in[(3 - i) * 8 + j];
        r[i] = w;
    }
}

void fe_to_be(unsigned char out[32], const sm2_fe a)
{
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            out[(3 - i) * 8 + j] = (unsigned char)(a[i] >> (56 - 8 * j));
}
