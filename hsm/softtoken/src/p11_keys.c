/*
 * p11_keys.c - key management functions (PKCS#11 v2.40 base 5.14): C_GenerateKey,
 * C_GenerateKeyPair, C_WrapKey, C_UnwrapKey.
 *
 * Wrapping formats (what the key-escrow centre relies on):
 *   SM4-ECB / SM4-CBC (no padding), AES-ECB / AES-CBC:
 *       secret key  -> its value (must be block aligned)
 *       EC/SM2 key  -> the private scalar d, big-endian, curve size (32 bytes for SM2):
 *                      with SM4-ECB this is GB/T 35276-2017 SM2EnvelopedKey.sm2EncryptedPrivateKey
 *   SM4-CBC-PAD (ours), AES-CBC-PAD, AES key wrap with padding (RFC 5649), AES key wrap
 *   (RFC 3394, if aligned):
 *       secret key  -> its value;  private key -> PKCS#8 PrivateKeyInfo DER
 *   CKM_SM2_ENCRYPT with an SM2 public key:
 *       secret key  -> DER SM2Cipher (GM/T 0009) of its value
 * Only keys with CKA_EXTRACTABLE true leave the token, and only this way.
 * SM2 key pairs (CKM_SM2_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN on the SM2 curve) and CKM_SM2_ENCRYPT
 * run on sm2p256.c unless RACENTRE_SOFTTOKEN_SM2_IMPL=openssl.
 */
#include "st.h"
#include "crypto.h"
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <string.h>

/* ------------------------------------------------------------------ generation */

static CK_RV check_class_type(const CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_CLASS cls, CK_KEY_TYPE *kt, int kt_free)
{
    CK_ULONG v;
    int found;
    CK_RV rv = tmpl_get_ulong(t, n, CKA_CLASS, &v, &found);
    if (rv != CKR_OK)
        return rv;
    if (found && v != cls)
        return CKR_TEMPLATE_INCONSISTENT;
    if ((rv = tmpl_get_ulong(t, n, CKA_KEY_TYPE, &v, &found)) != CKR_OK)
        return rv;
    if (found) {
        if (kt_free && (v == CKK_EC || v == CKK_SM2) && (*kt == CKK_EC || *kt == CKK_SM2))
            *kt = v;
        else if (v != *kt)
            return CKR_TEMPLATE_INCONSISTENT;
    }
    return CKR_OK;
}

CK_RV C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,
                    CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_object *o = NULL;
    unsigned char val[512];
    CK_ULONG len = 0;
    int found;
    CK_KEY_TYPE kt;
    if (!pMechanism || !phKey || (ulCount && !pTemplate)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    switch (pMechanism->mechanism) {
    case CKM_AES_KEY_GEN: kt = CKK_AES; break;
    case CKM_SM4_KEY_GEN: kt = CKK_SM4; break;
    case CKM_GENERIC_SECRET_KEY_GEN: kt = CKK_GENERIC_SECRET; break;
    default: rv = CKR_MECHANISM_INVALID; goto out;
    }
    if (pMechanism->ulParameterLen) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    if ((rv = tmpl_check(pTemplate, ulCount)) != CKR_OK ||
        (rv = check_class_type(pTemplate, ulCount, CKO_SECRET_KEY, &kt, 0)) != CKR_OK ||
        (rv = tmpl_get_ulong(pTemplate, ulCount, CKA_VALUE_LEN, &len, &found)) != CKR_OK)
        goto out;
    if (!found) {
        if (kt != CKK_SM4) {
            rv = CKR_TEMPLATE_INCOMPLETE;
            goto out;
        }
        len = 16;
    }
    if ((kt == CKK_AES && len != 16 && len != 24 && len != 32) || (kt == CKK_SM4 && len != 16) ||
        (kt == CKK_GENERIC_SECRET && (len < 1 || len > 512))) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    if (!(o = obj_new())) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    o->cls = CKO_SECRET_KEY;
    if ((rv = obj_apply_template(o, pTemplate, ulCount, ST_ORIGIN_GENERATE)) != CKR_OK)
        goto out;
    if (st_private_random(val, len)) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    if (obj_set_ulong(o, CKA_KEY_TYPE, kt) || obj_set(o, CKA_VALUE, val, len)) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if ((rv = obj_finish(o, ST_ORIGIN_GENERATE, pMechanism->mechanism)) != CKR_OK)
        goto out;
    pthread_mutex_lock(&g_st.lock);
    rv = st_register_object(s, o);
    if (rv == CKR_OK) {
        *phKey = o->handle;
        o = NULL;
    }
    pthread_mutex_unlock(&g_st.lock);
out:
    OPENSSL_cleanse(val, sizeof(val));
    obj_free(o);
    session_put(s);
    return rv;
}

static EVP_PKEY *keygen(int curve, CK_ULONG bits, const BIGNUM *e)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, curve == ST_CURVE_SM2 ? "SM2" : curve ? "EC" : "RSA", NULL);
    if (!c || EVP_PKEY_keygen_init(c) <= 0)
        goto done;
    if (curve == ST_CURVE_P256 && EVP_PKEY_CTX_set_group_name(c, "prime256v1") <= 0)
        goto done;
    if (curve == ST_CURVE_P384 && EVP_PKEY_CTX_set_group_name(c, "secp384r1") <= 0)
        goto done;
    if (curve == ST_CURVE_NONE &&
        (EVP_PKEY_CTX_set_rsa_keygen_bits(c, (int)bits) <= 0 || EVP_PKEY_CTX_set1_rsa_keygen_pubexp(c, (BIGNUM *)e) <= 0))
        goto done;
    if (EVP_PKEY_generate(c, &pk) <= 0)
        pk = NULL;
done:
    EVP_PKEY_CTX_free(c);
    return pk;
}

static CK_RV sm2_keygen(st_object *priv, st_object *pub)
{
    unsigned char d[32], pt[65], *der = NULL;
    size_t pl, derl = 0;
    const unsigned char *params = curve_params_der(ST_CURVE_SM2, &pl);
    CK_RV rv = CKR_FUNCTION_FAILED;
    if (sm2p256_keygen(d, pt) || der_octet_wrap(pt, 65, &der, &derl))
        goto done;
    int err = 0;
    if (!obj_attr(priv, CKA_EC_PARAMS))
        err |= obj_set(priv, CKA_EC_PARAMS, params, pl);
    if (!obj_attr(pub, CKA_EC_PARAMS))
        err |= obj_set(pub, CKA_EC_PARAMS, params, pl);
    err |= obj_set(priv, CKA_VALUE, d, 32);
    err |= obj_set(priv, CKA_EC_POINT, der, derl);
    err |= obj_set(pub, CKA_EC_POINT, der, derl);
    rv = err ? CKR_HOST_MEMORY : CKR_OK;
    priv->sm2_gen = pub->sm2_gen = 1;
done:
    OPENSSL_cleanse(d, sizeof(d));
    OPENSSL_free(der);
    return rv;
}

CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPubT,
                        CK_ULONG nPub, CK_ATTRIBUTE_PTR pPrivT, CK_ULONG nPriv, CK_OBJECT_HANDLE_PTR phPub,
                        CK_OBJECT_HANDLE_PTR phPriv)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_object *pub = NULL, *priv = NULL;
    EVP_PKEY *pk = NULL;
    BIGNUM *e = NULL;
    int curve = ST_CURVE_NONE;
    CK_KEY_TYPE kt;
    CK_ULONG bits = 0;
    if (!pMechanism || !phPub || !phPriv || (nPub && !pPubT) || (nPriv && !pPrivT)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = tmpl_check(pPubT, nPub)) != CKR_OK || (rv = tmpl_check(pPrivT, nPriv)) != CKR_OK)
        goto out;
    if (pMechanism->ulParameterLen) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    const CK_ATTRIBUTE *ecp = tmpl_find(pPubT, nPub, CKA_EC_PARAMS);
    if (!ecp)
        ecp = tmpl_find(pPrivT, nPriv, CKA_EC_PARAMS);
    switch (pMechanism->mechanism) {
    case CKM_SM2_KEY_PAIR_GEN:
        kt = CKK_SM2;
        curve = ST_CURVE_SM2;
        if (ecp && curve_from_params(ecp->pValue, ecp->ulValueLen) != ST_CURVE_SM2) {
            rv = CKR_TEMPLATE_INCONSISTENT;
            goto out;
        }
        break;
    case CKM_EC_KEY_PAIR_GEN:
        kt = CKK_EC;
        if (!ecp) {
            rv = CKR_TEMPLATE_INCOMPLETE;
            goto out;
        }
        curve = curve_from_params(ecp->pValue, ecp->ulValueLen);
        if (curve == ST_CURVE_NONE) {
            rv = CKR_CURVE_NOT_SUPPORTED;
            goto out;
        }
        break;
    case CKM_RSA_PKCS_KEY_PAIR_GEN: {
        int found;
        kt = CKK_RSA;
        if ((rv = tmpl_get_ulong(pPubT, nPub, CKA_MODULUS_BITS, &bits, &found)) != CKR_OK)
            goto out;
        if (!found) {
            rv = CKR_TEMPLATE_INCOMPLETE;
            goto out;
        }
        if (bits < 2048 || bits > 4096 || bits % 8) {
            rv = CKR_KEY_SIZE_RANGE;
            goto out;
        }
        const CK_ATTRIBUTE *pe = tmpl_find(pPubT, nPub, CKA_PUBLIC_EXPONENT);
        e = pe && pe->ulValueLen ? BN_bin2bn(pe->pValue, (int)pe->ulValueLen, NULL) : NULL;
        if (!e) {
            e = BN_new();
            if (!e || !BN_set_word(e, 65537)) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
        }
        if (!BN_is_odd(e) || BN_num_bits(e) < 17 || BN_num_bits(e) > 64) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
        break;
    }
    default:
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (curve == ST_CURVE_SM2 && pMechanism->mechanism == CKM_EC_KEY_PAIR_GEN)
        kt = CKK_EC;        /* CKK_EC + SM2 params: an SM2 key that keeps the caller's key type */
    CK_KEY_TYPE kt_priv = kt;
    int ec_free = curve == ST_CURVE_SM2;
    if ((rv = check_class_type(pPubT, nPub, CKO_PUBLIC_KEY, &kt, ec_free)) != CKR_OK ||
        (rv = check_class_type(pPrivT, nPriv, CKO_PRIVATE_KEY, &kt_priv, ec_free)) != CKR_OK)
        goto out;
    if (!(pub = obj_new()) || !(priv = obj_new())) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    pub->cls = CKO_PUBLIC_KEY;
    priv->cls = CKO_PRIVATE_KEY;
    if ((rv = obj_apply_template(pub, pPubT, nPub, ST_ORIGIN_GENERATE)) != CKR_OK ||
        (rv = obj_apply_template(priv, pPrivT, nPriv, ST_ORIGIN_GENERATE)) != CKR_OK)
        goto out;
    if (obj_set_ulong(pub, CKA_KEY_TYPE, kt) || obj_set_ulong(priv, CKA_KEY_TYPE, kt_priv)) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (curve == ST_CURVE_SM2 && st_sm2_fast()) {
        /* our own constant-time SM2 keygen: d uniform in [1, n-2] from RAND_priv_bytes, Q = d*G;
         * the key caches (o->sm2, o->pkey) are built on first use */
        if ((rv = sm2_keygen(priv, pub)) != CKR_OK)
            goto out;
    } else {
        if (!(pk = keygen(curve, bits, e))) {
            rv = CKR_FUNCTION_FAILED;
            goto out;
        }
        if ((rv = key_from_pkey(priv, pub, pk, curve, 1)) != CKR_OK)
            goto out;
        priv->pkey = pk;
        pk = NULL;
    }
    if ((rv = obj_finish(pub, ST_ORIGIN_GENERATE, pMechanism->mechanism)) != CKR_OK ||
        (rv = obj_finish(priv, ST_ORIGIN_GENERATE, pMechanism->mechanism)) != CKR_OK)
        goto out;
    pthread_mutex_lock(&g_st.lock);
    rv = st_register_object(s, pub);
    if (rv == CKR_OK) {
        rv = st_register_object(s, priv);
        if (rv != CKR_OK) {
            if (pub->is_token)
                store_delete_object(&g_st.slots[s->slot], pub);
            objs_remove(pub);
            pub = NULL;
        } else {
            *phPub = pub->handle;
            *phPriv = priv->handle;
            pub = priv = NULL;
        }
    }
    pthread_mutex_unlock(&g_st.lock);
out:
    BN_free(e);
    EVP_PKEY_free(pk);
    obj_free(pub);
    obj_free(priv);
    session_put(s);
    return rv;
}

/* ------------------------------------------------------------------ wrap / unwrap */

static int mech_wraps_pkcs8(CK_MECHANISM_TYPE m)
{
    return m == CKM_AES_CBC_PAD || m == CKM_RACENTRE_SM4_CBC_PAD || m == CKM_AES_KEY_WRAP_PAD ||
           m == CKM_AES_KEY_WRAP;
}

/* the bytes that represent key o under mechanism m (g_st.lock held) */
static CK_RV wrap_material(st_object *o, CK_MECHANISM_TYPE m, unsigned char **out, size_t *outl)
{
    if (o->cls == CKO_SECRET_KEY) {
        st_attr *v = obj_attr(o, CKA_VALUE);
        if (!v)
            return CKR_KEY_HANDLE_INVALID;
        *out = OPENSSL_memdup(v->val, v->len);
        *outl = v->len;
        return *out ? CKR_OK : CKR_HOST_MEMORY;
    }
    if (o->cls != CKO_PRIVATE_KEY || m == CKM_SM2_ENCRYPT)
        return CKR_KEY_NOT_WRAPPABLE;
    if (mech_wraps_pkcs8(m))
        return key_to_pkcs8(o, out, outl);
    if (o->curve == ST_CURVE_NONE)
        return CKR_KEY_NOT_WRAPPABLE;
    st_attr *v = obj_attr(o, CKA_VALUE);
    if (!v)
        return CKR_KEY_HANDLE_INVALID;
    *out = OPENSSL_memdup(v->val, v->len);
    *outl = v->len;
    return *out ? CKR_OK : CKR_HOST_MEMORY;
}

CK_RV C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey,
                CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_keysnap k;
    st_op op;
    unsigned char *mat = NULL;
    size_t matl = 0;
    memset(&k, 0, sizeof(k));
    memset(&op, 0, sizeof(op));
    if (!pMechanism || !pulWrappedKeyLen) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    const st_mech *m = mech_find(pMechanism->mechanism);
    if (!m || !(m->flags & CKF_WRAP)) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (pMechanism->ulParameterLen && !pMechanism->pParameter) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    pthread_mutex_lock(&g_st.lock);
    rv = snap_key(s, hWrappingKey, CKA_WRAP, &k);
    if (rv == CKR_KEY_HANDLE_INVALID)
        rv = CKR_WRAPPING_KEY_HANDLE_INVALID;
    if (rv == CKR_OK) {
        st_object *o;
        rv = obj_lookup(s, hKey, &o);
        if (rv != CKR_OK || (o->cls != CKO_SECRET_KEY && o->cls != CKO_PRIVATE_KEY))
            rv = rv == CKR_OK ? CKR_KEY_NOT_WRAPPABLE : CKR_KEY_HANDLE_INVALID;
        else if (!obj_bool(o, CKA_EXTRACTABLE, CK_FALSE))
            rv = CKR_KEY_UNEXTRACTABLE;
        else if (o->broken)
            rv = CKR_DEVICE_ERROR;
        else if (o->locked)
            rv = CKR_USER_NOT_LOGGED_IN;
        else
            rv = wrap_material(o, pMechanism->mechanism, &mat, &matl);
    }
    pthread_mutex_unlock(&g_st.lock);
    if (rv != CKR_OK)
        goto out;

    if (pMechanism->mechanism == CKM_SM2_ENCRYPT) {
        if (k.cls != CKO_PUBLIC_KEY || k.curve != ST_CURVE_SM2)
            rv = CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
        else if (pMechanism->ulParameterLen)
            rv = CKR_MECHANISM_PARAM_INVALID;
        else
            rv = asym_crypt(CKM_SM2_ENCRYPT, k.pkey, k.sm2, 1, mat, matl, pWrappedKey, pulWrappedKeyLen);
    } else if (mech_is_symmetric(pMechanism->mechanism)) {
        rv = sym_init(&op, pMechanism, &k, 1);
        if (rv == CKR_KEY_TYPE_INCONSISTENT)
            rv = CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
        else if (rv == CKR_KEY_SIZE_RANGE)
            rv = CKR_WRAPPING_KEY_SIZE_RANGE;
        if (rv == CKR_OK) {
            rv = sym_oneshot(&op, 1, mat, matl, pWrappedKey, pulWrappedKeyLen);
            if (rv == ST_SIZE_QUERY)
                rv = CKR_OK;
            else if (rv == CKR_DATA_LEN_RANGE)
                rv = CKR_KEY_SIZE_RANGE;
        }
    } else {
        rv = CKR_MECHANISM_INVALID;
    }
out:
    op_reset(&op);
    snap_free(&k);
    if (mat)
        OPENSSL_clear_free(mat, matl);
    session_put(s);
    return rv;
}

CK_RV C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey,
                  CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
                  CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_keysnap k;
    st_op op;
    st_object *o = NULL;
    unsigned char *pt = NULL;
    CK_ULONG ptl = 0;
    size_t ptcap = 0;
    CK_ULONG cls, kt;
    int found;
    memset(&k, 0, sizeof(k));
    memset(&op, 0, sizeof(op));
    if (!pMechanism || !phKey || (!pWrappedKey && ulWrappedKeyLen) || (ulAttributeCount && !pTemplate)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    const st_mech *m = mech_find(pMechanism->mechanism);
    if (!m || !(m->flags & CKF_UNWRAP)) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (pMechanism->ulParameterLen && !pMechanism->pParameter) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    if ((rv = tmpl_check(pTemplate, ulAttributeCount)) != CKR_OK)
        goto out;
    if ((rv = tmpl_get_ulong(pTemplate, ulAttributeCount, CKA_CLASS, &cls, &found)) != CKR_OK)
        goto out;
    if (!found || (cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY)) {
        rv = found ? CKR_TEMPLATE_INCONSISTENT : CKR_TEMPLATE_INCOMPLETE;
        goto out;
    }
    if ((rv = tmpl_get_ulong(pTemplate, ulAttributeCount, CKA_KEY_TYPE, &kt, &found)) != CKR_OK)
        goto out;
    if (!found) {
        rv = CKR_TEMPLATE_INCOMPLETE;
        goto out;
    }
    pthread_mutex_lock(&g_st.lock);
    rv = snap_key(s, hUnwrappingKey, CKA_UNWRAP, &k);
    pthread_mutex_unlock(&g_st.lock);
    if (rv == CKR_KEY_HANDLE_INVALID)
        rv = CKR_UNWRAPPING_KEY_HANDLE_INVALID;
    if (rv != CKR_OK)
        goto out;

    ptcap = ulWrappedKeyLen + 16;
    if (!(pt = OPENSSL_malloc(ptcap))) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    ptl = ptcap;
    if (pMechanism->mechanism == CKM_SM2_ENCRYPT) {
        if (k.cls != CKO_PRIVATE_KEY || k.curve != ST_CURVE_SM2)
            rv = CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
        else if (pMechanism->ulParameterLen)
            rv = CKR_MECHANISM_PARAM_INVALID;
        else if (cls != CKO_SECRET_KEY)
            rv = CKR_TEMPLATE_INCONSISTENT;
        else
            rv = asym_crypt(CKM_SM2_ENCRYPT, k.pkey, k.sm2, 0, pWrappedKey, ulWrappedKeyLen, pt, &ptl);
    } else if (mech_is_symmetric(pMechanism->mechanism)) {
        rv = sym_init(&op, pMechanism, &k, 0);
        if (rv == CKR_KEY_TYPE_INCONSISTENT)
            rv = CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
        else if (rv == CKR_KEY_SIZE_RANGE)
            rv = CKR_UNWRAPPING_KEY_SIZE_RANGE;
        if (rv == CKR_OK)
            rv = sym_oneshot(&op, 0, pWrappedKey, ulWrappedKeyLen, pt, &ptl);
    } else {
        rv = CKR_MECHANISM_INVALID;
    }
    if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_BUFFER_TOO_SMALL)
        rv = CKR_WRAPPED_KEY_INVALID;
    else if (rv == CKR_ENCRYPTED_DATA_LEN_RANGE)
        rv = CKR_WRAPPED_KEY_LEN_RANGE;
    if (rv != CKR_OK)
        goto out;

    if (!(o = obj_new())) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    o->cls = cls;
    if ((rv = obj_apply_template(o, pTemplate, ulAttributeCount, ST_ORIGIN_UNWRAP)) != CKR_OK)
        goto out;
    obj_refresh_cache(o);
    if (cls == CKO_SECRET_KEY) {
        CK_ULONG vl;
        if ((rv = tmpl_get_ulong(pTemplate, ulAttributeCount, CKA_VALUE_LEN, &vl, &found)) != CKR_OK)
            goto out;
        if (!found && kt == CKK_SM4)
            vl = 16, found = 1;
        if (found && vl > ptl) {
            rv = CKR_WRAPPED_KEY_INVALID;
            goto out;
        }
        if (obj_set(o, CKA_VALUE, pt, found ? vl : ptl)) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    } else if (mech_wraps_pkcs8(pMechanism->mechanism)) {
        if ((rv = key_from_pkcs8(o, pt, ptl)) != CKR_OK)
            goto out;
    } else {
        if (kt != CKK_EC && kt != CKK_SM2) {
            rv = CKR_TEMPLATE_INCONSISTENT;
            goto out;
        }
        if (kt == CKK_SM2 && !obj_attr(o, CKA_EC_PARAMS)) {
            size_t l;
            const unsigned char *p = curve_params_der(ST_CURVE_SM2, &l);
            if (obj_set(o, CKA_EC_PARAMS, p, l)) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
        }
        st_attr *pa = obj_attr(o, CKA_EC_PARAMS);
        if (!pa) {
            rv = CKR_TEMPLATE_INCOMPLETE;
            goto out;
        }
        int curve = curve_from_params(pa->val, pa->len);
        if (curve == ST_CURVE_NONE) {
            rv = CKR_CURVE_NOT_SUPPORTED;
            goto out;
        }
        if (ptl != curve_bytes(curve)) {
            rv = CKR_WRAPPED_KEY_INVALID;
            goto out;
        }
        if (obj_set(o, CKA_VALUE, pt, ptl)) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    rv = obj_finish(o, ST_ORIGIN_UNWRAP, 0);
    if (rv == CKR_ATTRIBUTE_VALUE_INVALID)
        rv = CKR_WRAPPED_KEY_INVALID;
    if (rv != CKR_OK)
        goto out;
    pthread_mutex_lock(&g_st.lock);
    rv = st_register_object(s, o);
    if (rv == CKR_OK) {
        *phKey = o->handle;
        o = NULL;
    }
    pthread_mutex_unlock(&g_st.lock);
out:
    if (pt)
        OPENSSL_clear_free(pt, ptcap);
    op_reset(&op);
    snap_free(&k);
    obj_free(o);
    session_put(s);
    return rv;
}

CK_RV C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                  CK_OBJECT_HANDLE_PTR k)
{
    (void)h; (void)m; (void)b; (void)t; (void)n; (void)k;
    return g_st.initialized ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED;
}
