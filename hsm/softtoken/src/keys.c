/*
 * keys.c - key material: PKCS#11 attributes <-> OpenSSL 3 EVP_PKEY.
 *   EC and SM2 keys (v2.40 current mechanisms 2.3: CKA_EC_PARAMS = DER namedCurve OID,
 *   CKA_EC_POINT = DER OCTET STRING of 04||X||Y, CKA_VALUE = private scalar d), with
 *   CKK_SM2 or CKK_EC + SM2 curve OID 1.2.156.10197.1.301 both meaning an SM2 key
 *   (GB/T 32918.1 curve sm2p256v1);
 *   RSA keys (v2.40 current mechanisms 2.1.2/2.1.3);
 *   PKCS#8 PrivateKeyInfo (RFC 5208) for AES key wrap of private keys.
 * Private scalars are checked to lie in [1, n-1] ([1, n-2] for SM2, GB/T 32918.1 6.1).
 * SM2 keys are also (and, unless RACENTRE_SOFTTOKEN_SM2_IMPL=openssl, only) held as our own
 * sm2p256_key (sm2p256.c): key_build_sm2.
 */
#include "st.h"
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <string.h>

static const unsigned char oid_p256[] = { 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07 };
static const unsigned char oid_p384[] = { 0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22 };
static const unsigned char oid_sm2[] = { 0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D };

int curve_from_params(const unsigned char *der, size_t len)
{
    if (len == sizeof(oid_p256) && !memcmp(der, oid_p256, len))
        return ST_CURVE_P256;
    if (len == sizeof(oid_p384) && !memcmp(der, oid_p384, len))
        return ST_CURVE_P384;
    if (len == sizeof(oid_sm2) && !memcmp(der, oid_sm2, len))
        return ST_CURVE_SM2;
    return ST_CURVE_NONE;
}

const unsigned char *curve_params_der(int curve, size_t *len)
{
    switch (curve) {
    case ST_CURVE_P256: *len = sizeof(oid_p256); return oid_p256;
    case ST_CURVE_P384: *len = sizeof(oid_p384); return oid_p384;
    case ST_CURVE_SM2: *len = sizeof(oid_sm2); return oid_sm2;
    default: *len = 0; return NULL;
    }
}

size_t curve_bytes(int curve)
{
    return curve == ST_CURVE_P384 ? 48 : curve == ST_CURVE_NONE ? 0 : 32;
}

static int curve_nid(int curve)
{
    switch (curve) {
    case ST_CURVE_P256: return NID_X9_62_prime256v1;
    case ST_CURVE_P384: return NID_secp384r1;
    case ST_CURVE_SM2: return NID_sm2;
    default: return NID_undef;
    }
}

static const char *curve_name(int curve)
{
    switch (curve) {
    case ST_CURVE_P256: return "prime256v1";
    case ST_CURVE_P384: return "secp384r1";
    case ST_CURVE_SM2: return "SM2";
    default: return NULL;
    }
}

/* accepts DER OCTET STRING(04||X||Y) or the bare 04||X||Y; writes 1+2f bytes */
int ec_point_decode(const unsigned char *in, size_t len, size_t f, unsigned char *out)
{
    size_t want = 1 + 2 * f;
    if (f == 0)
        return -1;
    if (len == want && in[0] == 0x04) {
        memcpy(out, in, want);
        return 0;
    }
    if (len >= 2 && in[0] == 0x04) {
        size_t l, h;
        if (der_read_len(in + 1, len - 1, &l, &h) == 0 && l == want && 1 + h + l == len && in[1 + h] == 0x04) {
            memcpy(out, in + 1 + h, want);
            return 0;
        }
    }
    return -1;
}

CK_RV ec_point_raw(const st_object *o, unsigned char *out, size_t *outlen)
{
    st_attr *a = obj_attr(o, CKA_EC_POINT);
    size_t f = curve_bytes(o->curve);
    if (!a || ec_point_decode(a->val, a->len, f, out))
        return CKR_KEY_HANDLE_INVALID;
    *outlen = 1 + 2 * f;
    return CKR_OK;
}

int st_sm2_fast(void)
{
    return !g_st.sm2_openssl;
}

CK_RV ec_pub_from_priv(int curve, const unsigned char *d, size_t dlen, unsigned char *pub, size_t *publen)
{
    if (curve == ST_CURVE_SM2 && st_sm2_fast()) {
        if (dlen != 32 || sm2p256_pub_from_priv(d, pub))    /* d in [1, n-2], constant time */
            return CKR_ATTRIBUTE_VALUE_INVALID;
        *publen = 65;
        return CKR_OK;
    }
    CK_RV rv = CKR_ATTRIBUTE_VALUE_INVALID;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(curve_nid(curve));
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *k = BN_bin2bn(d, (int)dlen, NULL);
    BIGNUM *lim = NULL;
    EC_POINT *P = NULL;
    if (!g || !ctx || !k) {
        rv = CKR_HOST_MEMORY;
        goto done;
    }
    BN_set_flags(k, BN_FLG_CONSTTIME);
    lim = BN_dup(EC_GROUP_get0_order(g));
    if (!lim || (curve == ST_CURVE_SM2 && !BN_sub_word(lim, 1)))
        goto done;
    if (BN_is_zero(k) || BN_cmp(k, lim) >= 0)
        goto done;
    P = EC_POINT_new(g);
    if (!P || !EC_POINT_mul(g, P, k, NULL, NULL, ctx))
        goto done;
    size_t n = EC_POINT_point2oct(g, P, POINT_CONVERSION_UNCOMPRESSED, pub, 1 + 2 * curve_bytes(curve), ctx);
    if (n != 1 + 2 * curve_bytes(curve))
        goto done;
    *publen = n;
    rv = CKR_OK;
done:
    EC_POINT_free(P);
    BN_clear_free(k);
    BN_free(lim);
    BN_CTX_free(ctx);
    EC_GROUP_free(g);
    return rv;
}

static BIGNUM *attr_bn(const st_object *o, CK_ATTRIBUTE_TYPE t)
{
    st_attr *a = obj_attr(o, t);
    if (!a || a->len == 0)
        return NULL;
    BIGNUM *b = BN_bin2bn(a->val, (int)a->len, NULL);
    if (b)
        BN_set_flags(b, BN_FLG_CONSTTIME);
    return b;
}

static EVP_PKEY *fromdata(const char *alg, OSSL_PARAM_BLD *bld, int selection)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    if (params && c && EVP_PKEY_fromdata_init(c) > 0)
        if (EVP_PKEY_fromdata(c, &pk, selection, params) <= 0)
            pk = NULL;
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);   /* contains copies of private values: freed (cleared for BNs) */
    return pk;
}

/* whether o's key material may be parsed now: not damaged, and a private key only while logged in */
static CK_RV key_material_usable(const st_object *o)
{
    if (o->broken)
        return CKR_DEVICE_ERROR;
    if (o->cls == CKO_PRIVATE_KEY && o->locked)
        return CKR_USER_NOT_LOGGED_IN;
    return CKR_OK;
}

CK_RV key_build_pkey(st_object *o)
{
    if (o->pkey)
        return CKR_OK;
    CK_RV usable = key_material_usable(o);
    if (usable != CKR_OK)
        return usable;
    int priv = o->cls == CKO_PRIVATE_KEY;
    CK_RV rv = CKR_KEY_HANDLE_INVALID;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn[8] = { 0 };
    if (!bld)
        return CKR_HOST_MEMORY;

    if (o->ktype == CKK_EC || o->ktype == CKK_SM2) {
        unsigned char pub[1 + 2 * 48];
        size_t publ;
        if (o->curve == ST_CURVE_NONE)
            goto done;
        if (ec_point_raw(o, pub, &publ) != CKR_OK)
            goto done;
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve_name(o->curve), 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publ))
            goto done;
        if (priv) {
            bn[0] = attr_bn(o, CKA_VALUE);
            if (!bn[0] || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn[0]))
                goto done;
        }
        o->pkey = fromdata(o->curve == ST_CURVE_SM2 ? "SM2" : "EC", bld,
                           priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
        if (o->pkey && o->curve == ST_CURVE_SM2 && !o->zdef_ok &&
            sm2_compute_z((const unsigned char *)RACENTRE_SM2_DEFAULT_ID, RACENTRE_SM2_DEFAULT_ID_LEN, pub, o->zdef) == 0)
            o->zdef_ok = 1;
    } else if (o->ktype == CKK_RSA) {
        static const CK_ATTRIBUTE_TYPE at[8] = { CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
            CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT };
        static const char *names[8] = { OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
            OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
            OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1 };
        int n = priv ? 8 : 2;
        for (int i = 0; i < n; i++) {
            bn[i] = attr_bn(o, at[i]);
            if (!bn[i]) {
                if (i < 3)
                    goto done;
                if (i == 3) {
                    n = 3;      /* no CRT values: n, e, d only */
                    break;
                }
                goto done;
            }
        }
        for (int i = 0; i < n; i++)
            if (!OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]))
                goto done;
        o->pkey = fromdata("RSA", bld, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    } else {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto done;
    }
    rv = o->pkey ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
done:
    for (int i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    OSSL_PARAM_BLD_free(bld);
    return rv;
}

/* g_st.lock held (or o not yet shared): o->sm2 from CKA_EC_POINT and, for a private key,
 * CKA_VALUE; the point is checked to be on the curve, d to lie in [1, n-2] */
CK_RV key_build_sm2(st_object *o)
{
    if (o->sm2)
        return CKR_OK;
    CK_RV usable = key_material_usable(o);
    if (usable != CKR_OK)
        return usable;
    int priv = o->cls == CKO_PRIVATE_KEY;
    if (o->curve != ST_CURVE_SM2 || (o->ktype != CKK_EC && o->ktype != CKK_SM2))
        return CKR_KEY_HANDLE_INVALID;
    unsigned char pub[65], d[32];
    size_t publ;
    if (ec_point_raw(o, pub, &publ) != CKR_OK || publ != 65)
        return CKR_KEY_HANDLE_INVALID;
    if (priv) {
        st_attr *v = obj_attr(o, CKA_VALUE);
        size_t vl = v ? v->len : 0;
        const unsigned char *vp = v ? v->val : NULL;
        while (vl > 32 && *vp == 0) {
            vp++;
            vl--;
        }
        if (vl == 0 || vl > 32)
            return CKR_KEY_HANDLE_INVALID;
        memset(d, 0, 32 - vl);
        memcpy(d + 32 - vl, vp, vl);
    }
    o->sm2 = sm2p256_key_new(priv ? d : NULL, pub);
    OPENSSL_cleanse(d, sizeof(d));
    if (!o->sm2)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    if (!o->zdef_ok &&
        sm2_compute_z((const unsigned char *)RACENTRE_SM2_DEFAULT_ID, RACENTRE_SM2_DEFAULT_ID_LEN, pub, o->zdef) == 0)
        o->zdef_ok = 1;
    return CKR_OK;
}

static int set_bn(st_object *o, CK_ATTRIBUTE_TYPE t, const BIGNUM *b)
{
    int n = BN_num_bytes(b);
    unsigned char *buf = OPENSSL_malloc(n ? n : 1);
    if (!buf)
        return -1;
    BN_bn2bin(b, buf);
    int r = obj_set(o, t, buf, n);
    OPENSSL_clear_free(buf, n ? n : 1);
    return r;
}

static int set_point(st_object *o, const unsigned char *pub, size_t publ)
{
    unsigned char *der;
    size_t derl;
    if (der_octet_wrap(pub, publ, &der, &derl))
        return -1;
    int r = obj_set(o, CKA_EC_POINT, der, derl);
    OPENSSL_free(der);
    return r;
}

/* fill priv (may be NULL) and pub (may be NULL) from a freshly made or decoded key. generated: pk
 * comes from our own EVP_PKEY_generate, whose public point is d*G already, so it is taken as is (one
 * scalar multiplication fewer per key pair); a decoded key's point is always recomputed from d, never
 * trusted from the encoding. */
CK_RV key_from_pkey(st_object *priv, st_object *pub, EVP_PKEY *pk, int curve, int generated)
{
    int err = 0;
    if (curve != ST_CURVE_NONE) {
        size_t f = curve_bytes(curve), pl, dl;
        unsigned char d[48], pt[97];
        const unsigned char *params = curve_params_der(curve, &dl);
        BIGNUM *bd = NULL;
        if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &bd))
            return CKR_FUNCTION_FAILED;
        int ok = BN_bn2binpad(bd, d, (int)f) == (int)f;
        BN_clear_free(bd);
        int have_pt = 0;
        if (ok && generated &&
            EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &pl) &&
            pl == 1 + 2 * f && pt[0] == 0x04)
            have_pt = 1;
        if (!ok || (!have_pt && ec_pub_from_priv(curve, d, f, pt, &pl) != CKR_OK)) {
            OPENSSL_cleanse(d, sizeof(d));
            return CKR_FUNCTION_FAILED;
        }
        if (priv) {
            if (!obj_attr(priv, CKA_EC_PARAMS))
                err |= obj_set(priv, CKA_EC_PARAMS, params, dl);
            err |= obj_set(priv, CKA_VALUE, d, f);
            err |= set_point(priv, pt, pl);
        }
        if (pub) {
            if (!obj_attr(pub, CKA_EC_PARAMS))
                err |= obj_set(pub, CKA_EC_PARAMS, params, dl);
            err |= set_point(pub, pt, pl);
        }
        OPENSSL_cleanse(d, sizeof(d));
    } else {
        static const char *names[8] = { OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
            OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
            OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1 };
        static const CK_ATTRIBUTE_TYPE at[8] = { CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
            CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT };
        for (int i = 0; i < 8; i++) {
            BIGNUM *b = NULL;
            if (!EVP_PKEY_get_bn_param(pk, names[i], &b))
                return CKR_FUNCTION_FAILED;
            if (priv)
                err |= set_bn(priv, at[i], b);
            if (pub && i < 2)
                err |= set_bn(pub, at[i], b);
            BN_clear_free(b);
        }
        if (pub)
            err |= obj_set_ulong(pub, CKA_MODULUS_BITS, (CK_ULONG)EVP_PKEY_get_bits(pk));
    }
    return err ? CKR_HOST_MEMORY : CKR_OK;
}

/* normalise and check imported (or generated) asymmetric key material */
CK_RV key_validate_import(st_object *o, int generated)
{
    if (o->ktype == CKK_EC || o->ktype == CKK_SM2) {
        st_attr *p = obj_attr(o, CKA_EC_PARAMS);
        if (!p) {
            if (o->ktype != CKK_SM2)
                return CKR_TEMPLATE_INCOMPLETE;
            if (obj_set(o, CKA_EC_PARAMS, oid_sm2, sizeof(oid_sm2)))
                return CKR_HOST_MEMORY;
            p = obj_attr(o, CKA_EC_PARAMS);
        }
        int curve = curve_from_params(p->val, p->len);
        if (curve == ST_CURVE_NONE)
            return CKR_CURVE_NOT_SUPPORTED;
        if (o->ktype == CKK_SM2 && curve != ST_CURVE_SM2)
            return CKR_TEMPLATE_INCONSISTENT;
        o->curve = curve;
        size_t f = curve_bytes(curve);
        unsigned char pt[97];
        size_t pl;
        if (o->cls == CKO_PRIVATE_KEY && generated && (o->pkey || o->sm2_gen) && obj_attr(o, CKA_VALUE) &&
            obj_attr(o, CKA_EC_POINT)) {
            /* C_GenerateKeyPair: d and Q = d*G come from the EVP_PKEY we just generated
             * (key_from_pkey) or from sm2p256_keygen, nothing imported to check -- spare a
             * second scalar multiplication */
        } else if (o->cls == CKO_PRIVATE_KEY) {
            st_attr *v = obj_attr(o, CKA_VALUE);
            if (!v)
                return CKR_TEMPLATE_INCOMPLETE;
            unsigned char d[48];
            size_t vl = v->len;
            const unsigned char *vp = v->val;
            while (vl > f && *vp == 0) {
                vp++;
                vl--;
            }
            if (vl == 0 || vl > f)
                return CKR_ATTRIBUTE_VALUE_INVALID;
            memset(d, 0, f - vl);
            memcpy(d + f - vl, vp, vl);
            CK_RV rv = ec_pub_from_priv(curve, d, f, pt, &pl);
            if (rv == CKR_OK && (obj_set(o, CKA_VALUE, d, f) || set_point(o, pt, pl)))
                rv = CKR_HOST_MEMORY;
            OPENSSL_cleanse(d, sizeof(d));
            if (rv != CKR_OK)
                return rv;
        } else {
            st_attr *q = obj_attr(o, CKA_EC_POINT);
            if (!q)
                return CKR_TEMPLATE_INCOMPLETE;
            if (ec_point_decode(q->val, q->len, f, pt))
                return CKR_ATTRIBUTE_VALUE_INVALID;
            if (set_point(o, pt, 1 + 2 * f))
                return CKR_HOST_MEMORY;
        }
    } else if (o->ktype == CKK_RSA) {
        if (!obj_attr(o, CKA_MODULUS) || !obj_attr(o, CKA_PUBLIC_EXPONENT))
            return CKR_TEMPLATE_INCOMPLETE;
        if (o->cls == CKO_PRIVATE_KEY && !obj_attr(o, CKA_PRIVATE_EXPONENT))
            return CKR_TEMPLATE_INCOMPLETE;
    } else {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (o->pkey || (generated && o->sm2_gen))
        return CKR_OK;
    /* build once to prove the material is a valid key (point on curve, RSA consistency) */
    CK_RV rv = (o->curve == ST_CURVE_SM2 && st_sm2_fast()) ? key_build_sm2(o) : key_build_pkey(o);
    if (rv != CKR_OK)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    if (o->ktype == CKK_RSA && o->cls == CKO_PUBLIC_KEY)
        obj_set_ulong(o, CKA_MODULUS_BITS, (CK_ULONG)EVP_PKEY_get_bits(o->pkey));
    return CKR_OK;
}

CK_RV key_to_pkcs8(st_object *o, unsigned char **der, size_t *len)
{
    CK_RV rv = key_build_pkey(o);
    if (rv != CKR_OK)
        return rv;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(o->pkey);
    if (!p8)
        return CKR_FUNCTION_FAILED;
    unsigned char *buf = NULL;
    int n = i2d_PKCS8_PRIV_KEY_INFO(p8, &buf);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0)
        return CKR_FUNCTION_FAILED;
    *der = buf;
    *len = (size_t)n;
    return CKR_OK;
}

CK_RV key_from_pkcs8(st_object *o, const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (!p8 || p != der + len) {
        PKCS8_PRIV_KEY_INFO_free(p8);
        return CKR_WRAPPED_KEY_INVALID;
    }
    EVP_PKEY *pk = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (!pk)
        return CKR_WRAPPED_KEY_INVALID;
    CK_RV rv = CKR_TEMPLATE_INCONSISTENT;
    int curve = ST_CURVE_NONE;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (o->ktype != CKK_RSA)
            goto done;
    } else if (EVP_PKEY_is_a(pk, "EC") || EVP_PKEY_is_a(pk, "SM2")) {
        char g[64];
        if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof(g), NULL))
            goto done;
        if (!strcmp(g, "SM2"))
            curve = ST_CURVE_SM2;
        else if (!strcmp(g, "prime256v1") || !strcmp(g, "P-256"))
            curve = ST_CURVE_P256;
        else if (!strcmp(g, "secp384r1") || !strcmp(g, "P-384"))
            curve = ST_CURVE_P384;
        else {
            rv = CKR_CURVE_NOT_SUPPORTED;
            goto done;
        }
        if (o->ktype != CKK_EC && !(o->ktype == CKK_SM2 && curve == ST_CURVE_SM2))
            goto done;
        st_attr *pa = obj_attr(o, CKA_EC_PARAMS);
        if (pa && curve_from_params(pa->val, pa->len) != curve)
            goto done;
    } else {
        goto done;
    }
    rv = key_from_pkey(o, NULL, pk, curve, 0);
done:
    EVP_PKEY_free(pk);
    return rv;
}
