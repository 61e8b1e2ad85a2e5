/*
 * sm2p256.h - hand-written SM2 (sm2p256v1) curve arithmetic, signature and encryption for
 * the token: OpenSSL 3.0 has no optimised code for this curve (no precomputed generator
 * table, generic BIGNUM-based EC code, ~390 us per signature), so every SM2 operation of
 * the token runs here instead; OpenSSL still supplies SM3 and randomness (RAND_priv_bytes).
 *
 *   GB/T 32918.1-2016  curve equation, point arithmetic, public key validation (6.2)
 *   GB/T 32918.2-2016  signature generation 6.1, verification 7.1
 *   GB/T 32918.4-2016  encryption 6.1, decryption 7.1, KDF 5.4.3
 *   GB/T 32918.5-2017  recommended curve parameters (sm2p256v1)
 *   GM/T 0009-2012     DER SM2Cipher ::= SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING,
 *                      cipherText OCTET STRING } (C1 C3 C2), byte-compatible with OpenSSL 3.0
 *
 * Everything touching a private scalar or nonce is constant time (no secret-dependent branch
 * or memory index); verification handles public data only and may branch.
 * All byte strings are big-endian; points are 04 || X || Y (65 bytes).
 */
#ifndef SM2P256_H
#define SM2P256_H
#include <stddef.h>

typedef struct sm2p256_key sm2p256_key;

int sm2p256_init(void);          /* builds the generator table once (pthread_once); 0 ok */

/* A key object: the public point (validated: on the curve, not infinity) and, if d is given,
 * d in [1, n-2] with pub = d*G, and its cached Montgomery forms of d and (1+d)^-1.  Reference counted;
 * the secret part is cleansed when the last reference goes. NULL on invalid input. */
sm2p256_key *sm2p256_key_new(const unsigned char *d32, const unsigned char pub[65]);
void sm2p256_key_ref(sm2p256_key *k);
void sm2p256_key_free(sm2p256_key *k);
const unsigned char *sm2p256_key_pub(const sm2p256_key *k);
int sm2p256_key_has_priv(const sm2p256_key *k);

int sm2p256_point_check(const unsigned char pub[65]);       /* 0 if a valid public point */
int sm2p256_pub_from_priv(const unsigned char d[32], unsigned char pub[65]); /* -1 unless d in [1,n-2] */
int sm2p256_keygen(unsigned char d[32], unsigned char pub[65]);

/* GB/T 32918.2 6.1 on e = SM3(Z || M) (any 32 bytes); sig = r || s. 0 ok */
int sm2p256_sign(const sm2p256_key *k, const unsigned char e[32], unsigned char sig[64]);
/* 1 valid, 0 invalid (r or s outside [1, n-1], t = 0, R != r, bad point) */
int sm2p256_verify(const unsigned char pub[65], const unsigned char e[32], const unsigned char sig[64]);

/* GB/T 32918.4; output DER SM2Cipher. mlen >= 1. *outl in: capacity, out: length. 0 ok,
 * -1 error, -2 out too small (*outl = the bound) */
size_t sm2p256_cipher_bound(size_t mlen);
int sm2p256_encrypt(const unsigned char pub[65], const unsigned char *m, size_t mlen,
                    unsigned char *out, size_t *outl);
/* length of the plaintext inside a well-formed DER SM2Cipher; -1 if malformed */
int sm2p256_plain_len(const unsigned char *c, size_t clen, size_t *mlen);
/* 0 ok; -1 on any failure (malformed, C1 not on the curve, t = 0, C3 mismatch), nothing
 * written to out then; -2 out too small */
int sm2p256_decrypt(const sm2p256_key *k, const unsigned char *c, size_t clen,
                    unsigned char *out, size_t *outl);

/* exposed for the self-test (tools/sm2p256_selftest.c) */
int sm2p256_base_mul(unsigned char out[65], const unsigned char k[32]);  /* k*G, any k */
int sm2p256_point_mul(unsigned char out[65], const unsigned char pt[65], const unsigned char k[32]);
int sm2p256_sign_with_k(const sm2p256_key *key, const unsigned char e[32], const unsigned char k[32],
                        unsigned char sig[64]);     /* fixed nonce: known-answer tests only */
#endif
