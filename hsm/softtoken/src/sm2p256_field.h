/*
 * sm2p256_field.h - internal to sm2p256*.c: constant-time Montgomery arithmetic modulo the
 * sm2p256v1 prime p and the group order n (GB/T 32918.5-2017 clause 5, GB/T 32918.1-2016
 * clause 4.2.1).  Elements are 4 little-endian 64-bit limbs, fully reduced (< modulus).
 */
#ifndef SM2P256_FIELD_H
#define SM2P256_FIELD_H
#include <stdint.h>

typedef uint64_t sm2_fe[4];

extern const sm2_fe sm2_p, sm2_n, sm2_one_p, sm2_one_n;

/* mod p, Montgomery form (R = 2^256): the hot operations are inline below */
void fp_inv(sm2_fe r, const sm2_fe a);          /* a^(p-2); 0 -> 0 */
void fp_to_mont(sm2_fe r, const sm2_fe a);
void fp_from_mont(sm2_fe r, const sm2_fe a);

/* mod n */
void fn_mul(sm2_fe r, const sm2_fe a, const sm2_fe b); /* Montgomery product a*b/R */
void fn_add(sm2_fe r, const sm2_fe a, const sm2_fe b);
void fn_sub(sm2_fe r, const sm2_fe a, const sm2_fe b);
void fn_to_mont(sm2_fe r, const sm2_fe a);
void fn_inv_mont(sm2_fe r, const sm2_fe a);     /* a in Montgomery form -> a^-1 in Montgomery form */
void fn_reduce_once(sm2_fe r, const sm2_fe a);  /* a < 2^256 < 2n -> a mod n */

/* helpers, all constant time; masks are all-ones (true) or zero */
uint64_t fe_is_zero(const sm2_fe a);            /* mask */
uint64_t fe_eq(const sm2_fe a, const sm2_fe b); /* mask */
uint64_t fe_lt(const sm2_fe a, const sm2_fe b); /* mask: a < b as integers */
void fe_from_be(sm2_fe r, const unsigned char in[32]);
void fe_to_be(unsigned char out[32], const sm2_fe a);

#if !defined(__x86_64__)
#error "sm2p256: x86-64 only (uses _addcarry_u64/_subborrow_u64 and unsigned __int128)"
#endif
#include <x86intrin.h>

typedef unsigned long long sm2_ull;

static inline void fe_cmov(sm2_fe r, const sm2_fe a, uint64_t mask) /* r = mask ? a : r */
{
    for (int i = 0; i < 4; i++)
        r[i] ^= (r[i] ^ a[i]) & mask;
}

/* r = (hi:t) mod p for (hi:t) < 2p */
static inline void fp_reduce_once(sm2_fe r, const sm2_ull t[4], sm2_ull hi)
{
    sm2_ull s0, s1, s2, s3, junk;
    unsigned char b = _subborrow_u64(0, t[0], 0xffffffffffffffffULL, &s0);
    b = _subborrow_u64(b, t[1], 0xffffffff00000000ULL, &s1);
    b = _subborrow_u64(b, t[2], 0xffffffffffffffffULL, &s2);
    b = _subborrow_u64(b, t[3], 0xfffffffeffffffffULL, &s3);
    b = _subborrow_u64(b, hi, 0, &junk);
    uint64_t keep = (uint64_t)0 - b;     /* (hi:t) < p: keep t */
    r[0] = (t[0] & keep) | (s0 & ~keep);
    r[1] = (t[1] & keep) | (s1 & ~keep);
    r[2] = (t[2] & keep) | (s2 & ~keep);
    r[3] = (t[3] & keep) | (s3 & ~keep);
}

/* Montgomery product a*b/2^256 mod p.  Operand scanning; each reduction step adds q*p for
 * q = t0 (-p^-1 = 1 mod 2^64) without multiplying: with p = 2^256 - 2^224 - 2^96 + 2^64 - 1,
 * (t + q*p) / 2^64 = t/2^64 + q*(2^192 + 1) - q*2^32*(2^128 + 1), and the last term is the
 * non-negative 4-limb value [q, 0, 0, q] - [q<<32, q>>32, q<<32, q>>32]. */
static inline void fp_mul(sm2_fe r, const sm2_fe a, const sm2_fe b)
{
    sm2_ull t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5;
    for (int i = 0; i < 4; i++) {
        uint64_t bi = b[i];
        unsigned __int128 c = (unsigned __int128)a[0] * bi + t0;
        t0 = (uint64_t)c;
        c = (c >> 64) + (unsigned __int128)a[1] * bi + t1;
        t1 = (uint64_t)c;
        c = (c >> 64) + (unsigned __int128)a[2] * bi + t2;
        t2 = (uint64_t)c;
        c = (c >> 64) + (unsigned __int128)a[3] * bi + t3;
        t3 = (uint64_t)c;
        c = (c >> 64) + t4;
        t4 = (uint64_t)c;
        t5 = (uint64_t)(c >> 64);
        sm2_ull q = t0, lo = q << 32, hi = q >> 32, d0, d1, d2, d3;
        unsigned char bw = _subborrow_u64(0, q, lo, &d0);
        bw = _subborrow_u64(bw, 0, hi, &d1);
        bw = _subborrow_u64(bw, 0, lo, &d2);
        (void)_subborrow_u64(bw, q, hi, &d3);
        unsigned char cy = _addcarry_u64(0, t1, d0, &t0);
        cy = _addcarry_u64(cy, t2, d1, &t1);
        cy = _addcarry_u64(cy, t3, d2, &t2);
        cy = _addcarry_u64(cy, t4, d3, &t3);
        t4 = t5 + cy;
    }
    sm2_ull t[4] = { t0, t1, t2, t3 };
    fp_reduce_once(r, t, t4);
}

static inline void fp_sqr(sm2_fe r, const sm2_fe a) { fp_mul(r, a, a); }

static inline void fp_add(sm2_fe r, const sm2_fe a, const sm2_fe b)
{
    sm2_ull t[4];
    unsigned char c = _addcarry_u64(0, a[0], b[0], &t[0]);
    c = _addcarry_u64(c, a[1], b[1], &t[1]);
    c = _addcarry_u64(c, a[2], b[2], &t[2]);
    c = _addcarry_u64(c, a[3], b[3], &t[3]);
    fp_reduce_once(r, t, c);
}

static inline void fp_sub(sm2_fe r, const sm2_fe a, const sm2_fe b)
{
    sm2_ull t0, t1, t2, t3;
    unsigned char bw = _subborrow_u64(0, a[0], b[0], &t0);
    bw = _subborrow_u64(bw, a[1], b[1], &t1);
    bw = _subborrow_u64(bw, a[2], b[2], &t2);
    bw = _subborrow_u64(bw, a[3], b[3], &t3);
    uint64_t m = (uint64_t)0 - bw;
    sm2_ull o0, o1, o2, o3;
    unsigned char c = _addcarry_u64(0, t0, 0xffffffffffffffffULL & m, &o0);
    c = _addcarry_u64(c, t1, 0xffffffff00000000ULL & m, &o1);
    c = _addcarry_u64(c, t2, 0xffffffffffffffffULL & m, &o2);
    (void)_addcarry_u64(c, t3, 0xfffffffeffffffffULL & m, &o3);
    r[0] = o0;
    r[1] = o1;
    r[2] = o2;
    r[3] = o3;
}

static inline void fp_neg(sm2_fe r, const sm2_fe a)
{
    static const sm2_fe z = { 0, 0, 0, 0 };
    fp_sub(r, z, a);
}
#endif
