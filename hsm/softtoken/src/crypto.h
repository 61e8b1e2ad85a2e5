/*
 * crypto.h - mechanism helpers shared by p11_crypto.c and p11_keys.c (see crypto.c).
 */
#ifndef ST_CRYPTO_H
#define ST_CRYPTO_H
#include "st.h"

/* what an operation needs from a key, copied under the global lock at C_xxxInit */
typedef struct {
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE ktype;
    int curve;
    int extractable;
    EVP_PKEY *pkey;                 /* own reference; NULL for SM2 keys on our own code */
    sm2p256_key *sm2;               /* own reference, SM2 keys on our own code */
    unsigned char secret[512];      /* secret key value */
    size_t slen;
    unsigned char pub[97];          /* EC/SM2 public point 04||X||Y */
    size_t publ;
    unsigned char zdef[32];
    int zdef_ok;
} st_keysnap;

#define ST_SIZE_QUERY (CKR_BUFFER_TOO_SMALL + 0x1000)

CK_RV snap_key(st_session *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE usage, st_keysnap *k);
void snap_free(st_keysnap *k);
int mech_is_symmetric(CK_MECHANISM_TYPE m);
int mech_is_keywrap(CK_MECHANISM_TYPE m);
CK_RV sym_init(st_op *op, const CK_MECHANISM *mech, const st_keysnap *k, int enc);
CK_RV sym_oneshot(st_op *op, int enc, const unsigned char *in, size_t inl, unsigned char *out, CK_ULONG *outl);
CK_RV asym_crypt(CK_MECHANISM_TYPE m, EVP_PKEY *pk, sm2p256_key *sm2, int enc, const unsigned char *in, size_t inl,
                 unsigned char *out, CK_ULONG *outl);
#endif
