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

/*
 * Carry/borrow primitives.  sm2_addc64(c, a, b, &out): out = a + b + c mod 2^64, returns the carry
 * (0/1); sm2_subb64(bw, a, b, &out): out = a - b - bw mod 2^64, returns the borrow (0/1); c and bw
 * must be 0 or 1.  Both are branch-free and touch no table.
 *   x86-64:    the _addcarry_u64/_subborrow_u64 intrinsics (adc/sbb chains; the measured fast path)
 *   elsewhere: portable C (any 64-bit GCC/Clang target: aarch64, ppc64le, riscv64, loongarch64,
 *              s390x, ...); -DSM2P256_PORTABLE (make SM2_PORTABLE=1, make selftest-portable) forces
 *              it on x86-64 for testing.
 * The multiplications use unsigned __int128 on every target.
 * A target without unsigned __int128 (32-bit) cannot build this code: the whole token's SM2 would
 * have to run on OpenSSL instead, which the build does not offer, so it stops here.
 */
#if !defined(__GNUC__) || !defined(__SIZEOF_INT128__)
#error "sm2p256: needs GCC or Clang on a 64-bit target with unsigned __int128 (x86-64, aarch64, ppc64le, riscv64, loongarch64, ...); 32-bit targets are not supported"
#endif

typedef unsigned long long sm2_ull;

#if defined(__x86_64__) && !defined(SM2P256_PORTABLE)
#define SM2P256_ARITH "x86-64 intrinsics"
#include <x86intrin.h>

static inline __attribute__((always_inline)) unsigned char sm2_addc64(unsigned char c, sm2_ull a, sm2_ull b,
                                                                      sm2_ull *out)
{
    return _addcarry_u64(c, a, b, out);
}

static inline __attribute__((always_inline)) unsigned char sm2_subb64(unsigned char bw, sm2_ull a, sm2_ull b,
                                                                      sm2_ull *out)
{
    return _subborrow_u64(bw, a, b, out);
}
#else
#define SM2P256_ARITH "portable C"

/* Plain 64-bit adds and subtracts, the carry/borrow recovered by unsigned comparisons: GCC and
 * Clang emit those as flag reads (setc/adc on x86-64, cset/cinc on aarch64), not as branches; the
 * valgrind check (make ctgrind-portable) confirms it for the x86-64 build.  Of the three forms
 * tried with GCC 12 (this one, unsigned __int128 sums, __builtin_add_overflow) it is the fastest
 * on x86-64 (~2.7x the __int128 form) and, with the __int128 form, the shortest on aarch64.
 * The two carries of a + b + c cannot both be 1, nor the two borrows of a - b - bw. */
static inline __attribute__((always_inline)) unsigned char sm2_addc64(unsigned char c, sm2_ull a, sm2_ull b,
                                                                      sm2_ull *out)
{
    sm2_ull s = a + b, t = s + c;
    *out = t;
    return (unsigned char)((s < a) | (t < s));
}

static inline __attribute__((always_inline)) unsigned char sm2_subb64(unsigned char bw, sm2_ull a, sm2_ull b,
                                                                      sm2_ull *out)
{
    sm2_ull s = a - b, t = s - bw;
    *out = t;
    return (unsigned char)((a < b) | (s < bw));
}
#endif

static inline void fe_cmov(sm2_fe r, const sm2_fe a, uint64_t mask) /* r = mask ? a : r */
{
    for (int i = 0; i < 4; i++)
        r[i] ^= (r[i] ^ a[i]) & mask;
}

/* r = (hi:t) mod p for (hi:t) < 2p */
static inline void fp_reduce_once(sm2_fe r, const sm2_ull t[4], sm2_ull hi)
{
    sm2_ull s0, s1, s2, s3, junk;
    unsigned char b = sm2_subb64(0, t[0], 0xffffffffffffffffULL, &s0);
    b = sm2_subb64(b, t[1], 0xffffffff00000000ULL, &s1);
    b = sm2_subb64(b, t[2], 0xffffffffffffffffULL, &s2);
    b = sm2_subb64(b, t[3], 0xfffffffeffffffffULL, &s3);
    b = sm2_subb64(b, hi, 0, &junk);
    uint64_t keep = (uint64_t)0 - b;     /* (hi:t) < p: keep t */
    r[0] = (t[0] & keep) | (s0 & ~keep);
    r[1] = (t[1] & keep) | (s1 & ~keep);
    r[2] = (t[2] & keep) | (s2 & ~keep);
    r[3] = (t[3] & keep) | (s3 & ~keep);
}

/* Montgomery reduction of a 512-bit T < p^2: four steps V <- (V + q*p)/2^64 (q = V mod 2^64,
 * same multiplication-free q*p as fp_mul) on the low half, then + the high half.  Each V stays
 * below 2^(256-64k) + p < 2^256, so four limbs hold it; the sum is < 2p. */
static inline void fp_redc(sm2_fe r, sm2_ull x0, sm2_ull x1, sm2_ull x2, sm2_ull x3, sm2_ull h0, sm2_ull h1,
                           sm2_ull h2, sm2_ull h3)
{
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        sm2_ull q = x0, lo = q << 32, hi = q >> 32, d0, d1, d2, d3;
        unsigned char bw = sm2_subb64(0, q, lo, &d0);
        bw = sm2_subb64(bw, 0, hi, &d1);
        bw = sm2_subb64(bw, 0, lo, &d2);
        (void)sm2_subb64(bw, q, hi, &d3);
        unsigned char cy = sm2_addc64(0, x1, d0, &x0);
        cy = sm2_addc64(cy, x2, d1, &x1);
        cy = sm2_addc64(cy, x3, d2, &x2);
        x3 = d3 + cy;
    }
    sm2_ull t[4];
    unsigned char c = sm2_addc64(0, x0, h0, &t[0]);
    c = sm2_addc64(c, x1, h1, &t[1]);
    c = sm2_addc64(c, x2, h2, &t[2]);
    c = sm2_addc64(c, x3, h3, &t[3]);
    fp_reduce_once(r, t, c);
}

/* a^2 / 2^256 mod p: 6 cross products doubled + 4 squares, then fp_redc */
static inline void fp_sqr(sm2_fe r, const sm2_fe a)
{
    unsigned __int128 c;
    sm2_ull t0, t1, t2, t3, t4, t5, t6, t7, h;
    c = (unsigned __int128)a[0] * a[1];
    t1 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[0] * a[2] + h;
    t2 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[0] * a[3] + h;
    t3 = (uint64_t)c;
    t4 = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[1] * a[2] + t3;
    t3 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[1] * a[3] + t4 + h;
    t4 = (uint64_t)c;
    t5 = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[2] * a[3] + t5;
    t5 = (uint64_t)c;
    t6 = (uint64_t)(c >> 64);
    t7 = t6 >> 63;
    t6 = (t6 << 1) | (t5 >> 63);
    t5 = (t5 << 1) | (t4 >> 63);
    t4 = (t4 << 1) | (t3 >> 63);
    t3 = (t3 << 1) | (t2 >> 63);
    t2 = (t2 << 1) | (t1 >> 63);
    t1 <<= 1;
    unsigned __int128 s0 = (unsigned __int128)a[0] * a[0], s1 = (unsigned __int128)a[1] * a[1],
                      s2 = (unsigned __int128)a[2] * a[2], s3 = (unsigned __int128)a[3] * a[3];
    t0 = (uint64_t)s0;
    unsigned char cy = sm2_addc64(0, t1, (uint64_t)(s0 >> 64), &t1);
    cy = sm2_addc64(cy, t2, (uint64_t)s1, &t2);
    cy = sm2_addc64(cy, t3, (uint64_t)(s1 >> 64), &t3);
    cy = sm2_addc64(cy, t4, (uint64_t)s2, &t4);
    cy = sm2_addc64(cy, t5, (uint64_t)(s2 >> 64), &t5);
    cy = sm2_addc64(cy, t6, (uint64_t)s3, &t6);
    (void)sm2_addc64(cy, t7, (uint64_t)(s3 >> 64), &t7);
    fp_redc(r, t0, t1, t2, t3, t4, t5, t6, t7);
}

/* a*b / 2^256 mod p: schoolbook 512-bit product, then fp_redc */
static inline void fp_mul(sm2_fe r, const sm2_fe a, const sm2_fe b)
{
    unsigned __int128 c;
    sm2_ull t0, t1, t2, t3, t4, t5, t6, t7, h;
    c = (unsigned __int128)a[0] * b[0];
    t0 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[1] * b[0] + h;
    t1 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[2] * b[0] + h;
    t2 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[3] * b[0] + h;
    t3 = (uint64_t)c;
    t4 = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[0] * b[1] + t1;
    t1 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[1] * b[1] + t2 + h;
    t2 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[2] * b[1] + t3 + h;
    t3 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[3] * b[1] + t4 + h;
    t4 = (uint64_t)c;
    t5 = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[0] * b[2] + t2;
    t2 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[1] * b[2] + t3 + h;
    t3 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[2] * b[2] + t4 + h;
    t4 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[3] * b[2] + t5 + h;
    t5 = (uint64_t)c;
    t6 = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[0] * b[3] + t3;
    t3 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[1] * b[3] + t4 + h;
    t4 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[2] * b[3] + t5 + h;
    t5 = (uint64_t)c;
    h = (uint64_t)(c >> 64);
    c = (unsigned __int128)a[3] * b[3] + t6 + h;
    t6 = (uint64_t)c;
    t7 = (uint64_t)(c >> 64);
    fp_redc(r, t0, t1, t2, t3, t4, t5, t6, t7);
}
static inline void fp_add(sm2_fe r, const sm2_fe a, const sm2_fe b)
{
    sm2_ull t[4];
    unsigned char c = sm2_addc64(0, a[0], b[0], &t[0]);
    c = sm2_addc64(c, a[1], b[1], &t[1]);
    c = sm2_addc64(c, a[2], b[2], &t[2]);
    c = sm2_addc64(c, a[3], b[3], &t[3]);
    fp_reduce_once(r, t, c);
}

static inline void fp_sub(sm2_fe r, const sm2_fe a, const sm2_fe b)
{
    sm2_ull t0, t1, t2, t3;
    unsigned char bw = sm2_subb64(0, a[0], b[0], &t0);
    bw = sm2_subb64(bw, a[1], b[1], &t1);
    bw = sm2_subb64(bw, a[2], b[2], &t2);
    bw = sm2_subb64(bw, a[3], b[3], &t3);
    uint64_t m = (uint64_t)0 - bw;
    sm2_ull o0, o1, o2, o3;
    unsigned char c = sm2_addc64(0, t0, 0xffffffffffffffffULL & m, &o0);
    c = sm2_addc64(c, t1, 0xffffffff00000000ULL & m, &o1);
    c = sm2_addc64(c, t2, 0xffffffffffffffffULL & m, &o2);
    (void)sm2_addc64(c, t3, 0xfffffffeffffffffULL & m, &o3);
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
