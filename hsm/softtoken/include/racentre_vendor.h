/*
 * racentre_vendor.h - the ONE place where the RA Centre soft token's vendor-defined
 * PKCS#11 codes live (PKCS#11 v2.40 has no SM2/SM3/SM4 codes; everything here is in the
 * CKK_/CKM_VENDOR_DEFINED range 0x80000000, PKCS#11 v2.40 base spec section 2.6).
 *
 * The SM codes are the Sansec values as published in XiPKI's vendor file, so software
 * written against a Sansec HSM works unchanged against this token:
 *
 *   name                    value        use
 *   ----------------------  ----------   ---------------------------------------------------
 *   CKK_SM2                 0x80000004   SM2 key type (GB/T 32918); CKK_EC + SM2 curve OID
 *                                        1.2.156.10197.1.301 is accepted as an alias
 *   CKK_SM4                 0x80000106   SM4 key type (GB/T 32907), 16-byte value
 *   CKM_SM2_KEY_PAIR_GEN    0x80008001   SM2 key-pair generation
 *   CKM_SM2_SM3             0x80008100   SM2 sign/verify, message in: e = SM3(Z || M) with
 *                                        Z per GB/T 32918.2 computed inside the token; the
 *                                        mechanism parameter (optional) is the raw user ID,
 *                                        default "1234567812345678"
 *   CKM_SM2_SIGN_RAW        0x80008104   SM2 sign/verify of a caller-supplied 32-byte e
 *   CKM_SM2_ENCRYPT         0x80008200   SM2 encrypt/decrypt and key wrap/unwrap (GB/T 32918.4),
 *                                        ciphertext = GM/T 0009 DER SM2Cipher
 *                                        SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING(32),
 *                                                   ciphertext OCTET STRING }
 *   CKM_SM3                 0x80009001   SM3 digest (GB/T 32905)
 *   CKM_SM4_KEY_GEN         0x80000107   SM4 key generation
 *   CKM_SM4_ECB             0x80000108   SM4-ECB, no padding
 *   CKM_SM4_CBC             0x80000109   SM4-CBC, no padding, parameter = 16-byte IV
 *
 * Codes that are ours, NOT Sansec's (block 0x8052xxxx, "R" = RA Centre):
 *
 *   CKM_RACENTRE_SM4_CBC_PAD 0x80520001  SM4-CBC with PKCS#7 padding, parameter = 16-byte IV
 *   CKM_RACENTRE_SM3_HMAC    0x80520002  HMAC-SM3 sign/verify with a generic secret key
 *
 * Signature format for CKM_SM2_SM3 and CKM_SM2_SIGN_RAW: raw r || s, 64 bytes, each value
 * 32-byte big-endian (the PKCS#11 CKM_ECDSA convention), NOT the DER SEQUENCE{r,s}.
 * Some vendors' HSMs return DER; the Python layer's vendor profile has a quirk flag for that.
 */
#ifndef RACENTRE_VENDOR_H
#define RACENTRE_VENDOR_H

#define CKK_SM2                   0x80000004UL
#define CKK_SM4                   0x80000106UL

#define CKM_SM2_KEY_PAIR_GEN      0x80008001UL
#define CKM_SM2_SM3               0x80008100UL
#define CKM_SM2_SIGN_RAW          0x80008104UL
#define CKM_SM2_ENCRYPT           0x80008200UL
#define CKM_SM3                   0x80009001UL
#define CKM_SM4_KEY_GEN           0x80000107UL
#define CKM_SM4_ECB               0x80000108UL
#define CKM_SM4_CBC               0x80000109UL

/* ours, not Sansec's */
#define CKM_RACENTRE_SM4_CBC_PAD  0x80520001UL
#define CKM_RACENTRE_SM3_HMAC     0x80520002UL

/* GB/T 32918 default signer ID and the DER of the SM2 curve OID 1.2.156.10197.1.301 */
#define RACENTRE_SM2_DEFAULT_ID     "1234567812345678"
#define RACENTRE_SM2_DEFAULT_ID_LEN 16
#define RACENTRE_SM2_CURVE_OID_DER  "\x06\x08\x2A\x81\x1C\xCF\x55\x01\x82\x2D"
#define RACENTRE_SM2_CURVE_OID_DER_LEN 10

#endif
