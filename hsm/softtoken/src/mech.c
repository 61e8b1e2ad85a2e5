/*
 * mech.c - the token's mechanism table for C_GetMechanismList / C_GetMechanismInfo
 * (PKCS#11 v2.40 base 5.5).  Key sizes follow the v2.40 current-mechanisms document:
 * bits for RSA and EC/SM2, bytes for AES, SM4 and generic secrets.
 */
#include "st.h"

#define SV   (CKF_SIGN | CKF_VERIFY)
#define ED   (CKF_ENCRYPT | CKF_DECRYPT)
#define WU   (CKF_WRAP | CKF_UNWRAP)
#define ECF  (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)

static const st_mech mechs[] = {
    /* SM2 / SM3 / SM4 (GB/T 32918, 32905, 32907), vendor codes in racentre_vendor.h */
    { CKM_SM2_KEY_PAIR_GEN,     256, 256,   CKF_GENERATE_KEY_PAIR | ECF },
    { CKM_SM2_SM3,              256, 256,   SV | ECF },
    { CKM_SM2_SIGN_RAW,         256, 256,   SV | ECF },
    { CKM_SM2_ENCRYPT,          256, 256,   ED | WU | ECF },
    { CKM_SM3,                  0,   0,     CKF_DIGEST },
    { CKM_SM4_KEY_GEN,          16,  16,    CKF_GENERATE },
    { CKM_SM4_ECB,              16,  16,    ED | WU },
    { CKM_SM4_CBC,              16,  16,    ED | WU },
    { CKM_RACENTRE_SM4_CBC_PAD, 16,  16,    ED | WU },
    { CKM_RACENTRE_SM3_HMAC,    1,   512,   SV },
    /* EC */
    { CKM_EC_KEY_PAIR_GEN,      256, 384,   CKF_GENERATE_KEY_PAIR | ECF },
    { CKM_ECDSA,                256, 384,   SV | ECF },
    { CKM_ECDSA_SHA256,         256, 384,   SV | ECF },
    { CKM_ECDSA_SHA384,         256, 384,   SV | ECF },
    /* RSA */
    { CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 4096, CKF_GENERATE_KEY_PAIR },
    { CKM_RSA_PKCS,             2048, 4096, SV | ED },
    { CKM_SHA256_RSA_PKCS,      2048, 4096, SV },
    { CKM_SHA384_RSA_PKCS,      2048, 4096, SV },
    { CKM_SHA512_RSA_PKCS,      2048, 4096, SV },
    { CKM_RSA_PKCS_PSS,         2048, 4096, SV },
    { CKM_SHA256_RSA_PKCS_PSS,  2048, 4096, SV },
    { CKM_SHA384_RSA_PKCS_PSS,  2048, 4096, SV },
    { CKM_SHA512_RSA_PKCS_PSS,  2048, 4096, SV },
    /* AES */
    { CKM_AES_KEY_GEN,          16,  32,    CKF_GENERATE },
    { CKM_AES_ECB,              16,  32,    ED | WU },
    { CKM_AES_CBC,              16,  32,    ED | WU },
    { CKM_AES_CBC_PAD,          16,  32,    ED | WU },
    { CKM_AES_KEY_WRAP,         16,  32,    ED | WU },
    { CKM_AES_KEY_WRAP_PAD,     16,  32,    ED | WU },
    /* generic secrets, HMAC, digests */
    { CKM_GENERIC_SECRET_KEY_GEN, 1, 512,   CKF_GENERATE },
    { CKM_SHA256_HMAC,          1,   512,   SV },
    { CKM_SHA_1,                0,   0,     CKF_DIGEST },
    { CKM_SHA256,               0,   0,     CKF_DIGEST },
    { CKM_SHA384,               0,   0,     CKF_DIGEST },
    { CKM_SHA512,               0,   0,     CKF_DIGEST },
};

const st_mech *mech_find(CK_MECHANISM_TYPE t)
{
    for (size_t i = 0; i < ST_ARRAY_LEN(mechs); i++)
        if (mechs[i].type == t)
            return &mechs[i];
    return NULL;
}

const st_mech *mech_table(size_t *n)
{
    *n = ST_ARRAY_LEN(mechs);
    return mechs;
}
