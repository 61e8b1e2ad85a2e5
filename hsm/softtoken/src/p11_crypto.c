/*
 * p11_crypto.c - encryption, decryption, message digesting, signing and verification
 * entry points (PKCS#11 v2.40 base 5.8, 5.9, 5.10, 5.11, 5.12), with the output-length
 * convention of 5.2 (NULL buffer = size query, CKR_BUFFER_TOO_SMALL keeps the operation).
 *
 * Signature mechanisms:
 *   CKM_SM2_SM3      GB/T 32918.2: e = SM3(Z || M), Z from the public key and the user ID
 *                    (mechanism parameter = raw ID bytes, default "1234567812345678");
 *                    Z for the default ID is cached per key.
 *   CKM_SM2_SIGN_RAW the caller gives e (32 bytes).
 *   CKM_ECDSA[_SHA256|_SHA384] on P-256/P-384 only; an SM2-curve key is refused with
 *                    CKR_KEY_TYPE_INCONSISTENT (plain ECDSA on the SM2 curve is not SM2).
 *   RSA PKCS #1 v1.5 and PSS (CK_RSA_PKCS_PSS_PARAMS honoured), HMAC-SHA256, HMAC-SM3.
 * SM2 and ECDSA signatures are raw r || s, each half the curve size, big-endian.
 * SM2 signing and verification run on sm2p256.c (unless RACENTRE_SOFTTOKEN_SM2_IMPL=openssl).
 *
 * Hot path: C_SignInit takes the global lock only to look the key up and reference its
 * cached EVP_PKEY; the EVP_PKEY_CTX is cached per session and reused while the key is the
 * same, so C_SignInit + C_Sign cost one SM3 and one EVP_PKEY_sign.
 */
#include "st.h"
#include "crypto.h"
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <string.h>

#define MAX_ACC (1u << 24)

static CK_RV acc(st_op *op, const unsigned char *d, size_t n)
{
    if (op->buflen + n > MAX_ACC)
        return CKR_DATA_LEN_RANGE;
    return st_buf_append(&op->buf, &op->buflen, &op->bufcap, d, n) ? CKR_HOST_MEMORY : CKR_OK;
}

static const EVP_MD *md_for(CK_MECHANISM_TYPE m)
{
    switch (m) {
    case CKM_SM3: case CKM_SM2_SM3: case CKM_RACENTRE_SM3_HMAC: return g_st.sm3;
    case CKM_SHA_1: return g_st.sha1;
    case CKM_SHA256: case CKM_ECDSA_SHA256: case CKM_SHA256_RSA_PKCS: case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_SHA256_HMAC:
        return g_st.sha256;
    case CKM_SHA384: case CKM_ECDSA_SHA384: case CKM_SHA384_RSA_PKCS: case CKM_SHA384_RSA_PKCS_PSS:
        return g_st.sha384;
    case CKM_SHA512: case CKM_SHA512_RSA_PKCS: case CKM_SHA512_RSA_PKCS_PSS:
        return g_st.sha512;
    default:
        return NULL;
    }
}

static const EVP_MD *md_for_ckg(CK_ULONG mgf)
{
    switch (mgf) {
    case CKG_MGF1_SHA1: return g_st.sha1;
    case CKG_MGF1_SHA256: return g_st.sha256;
    case CKG_MGF1_SHA384: return g_st.sha384;
    case CKG_MGF1_SHA512: return g_st.sha512;
    default: return NULL;
    }
}

/* ================================================================== encrypt / decrypt */

static CK_RV crypt_init(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key, int enc)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = enc ? &s->enc : &s->dec;
    st_keysnap k;
    memset(&k, 0, sizeof(k));
    if (!mech) {                      /* cancel (PKCS#11 3.0 style), harmless in 2.40 */
        op_reset(op);
        goto out;
    }
    if (op->active) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    const st_mech *m = mech_find(mech->mechanism);
    if (!m || !(m->flags & (enc ? CKF_ENCRYPT : CKF_DECRYPT))) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (mech->ulParameterLen && !mech->pParameter) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    pthread_mutex_lock(&g_st.lock);
    rv = snap_key(s, key, enc ? CKA_ENCRYPT : CKA_DECRYPT, &k);
    pthread_mutex_unlock(&g_st.lock);
    if (rv != CKR_OK)
        goto out;
    if (mech_is_symmetric(mech->mechanism)) {
        rv = sym_init(op, mech, &k, enc);
    } else if (mech->mechanism == CKM_SM2_ENCRYPT || mech->mechanism == CKM_RSA_PKCS) {
        int sm2 = mech->mechanism == CKM_SM2_ENCRYPT;
        if (k.cls != (enc ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY) ||
            (sm2 ? k.curve != ST_CURVE_SM2 : k.ktype != CKK_RSA))
            rv = CKR_KEY_TYPE_INCONSISTENT;
        else if (mech->ulParameterLen)
            rv = CKR_MECHANISM_PARAM_INVALID;
        else {
            op->pkey = k.pkey;
            k.pkey = NULL;
            op->sm2 = k.sm2;
            k.sm2 = NULL;
            op->mech = mech->mechanism;
        }
    } else {
        rv = CKR_MECHANISM_INVALID;
    }
    if (rv == CKR_OK)
        op->active = 1;
    else
        op_reset(op);
out:
    snap_free(&k);
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

/* single part; keeps the operation alive for size queries and CKR_BUFFER_TOO_SMALL */
static CK_RV crypt_run(st_op *op, int enc, const unsigned char *in, size_t inl, unsigned char *out, CK_ULONG *outl)
{
    CK_RV rv;
    if (op->cctx && !op->multi) {
        rv = sym_oneshot(op, enc, in, inl, out, outl);
        if (rv == ST_SIZE_QUERY)
            return CKR_OK;
    } else if (op->cctx) {
        return CKR_OPERATION_ACTIVE;
    } else {
        rv = asym_crypt(op->mech, op->pkey, op->sm2, enc, in, inl, out, outl);
        if (rv == CKR_OK && !out)
            return CKR_OK;
    }
    if (rv != CKR_BUFFER_TOO_SMALL)
        op_reset(op);
    return rv;
}

static CK_RV crypt_single(CK_SESSION_HANDLE h, int enc, CK_BYTE_PTR in, CK_ULONG inl, CK_BYTE_PTR out, CK_ULONG_PTR outl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = enc ? &s->enc : &s->dec;
    if (!op->active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (!outl || (!in && inl)) {
        op_reset(op);
        rv = CKR_ARGUMENTS_BAD;
    } else
        rv = crypt_run(op, enc, in ? in : (CK_BYTE_PTR)"", inl, out, outl);
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

/* exact output of a multi-part symmetric update given pending bytes (v2.40 5.8) */
static size_t sym_update_len(st_op *op, int enc, size_t inl, size_t *newpending)
{
    size_t total = op->outlen + inl, b = op->block;
    size_t out = total - total % b;
    if (op->pad && !enc && total % b == 0 && total > 0)
        out -= b;
    *newpending = total - out;
    return out;
}

static CK_RV crypt_update(CK_SESSION_HANDLE h, int enc, CK_BYTE_PTR in, CK_ULONG inl, CK_BYTE_PTR out, CK_ULONG_PTR outl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = enc ? &s->enc : &s->dec;
    if (!op->active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (!outl || (!in && inl)) {
        op_reset(op);
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!op->cctx || mech_is_keywrap(op->mech)) {
        /* one-shot mechanisms: collect, answer at Final */
        if ((rv = acc(op, in, inl)) != CKR_OK)
            op_reset(op);
        else
            *outl = 0;
        goto out;
    }
    size_t pend, need = sym_update_len(op, enc, inl, &pend);
    if (!out) {
        *outl = need;
        goto out;
    }
    if (*outl < need) {
        *outl = need;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    int l = 0;
    if (!EVP_CipherUpdate(op->cctx, out, &l, in, (int)inl) || (size_t)l != need) {
        op_reset(op);
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    op->outlen = pend;
    op->multi = 1;
    *outl = need;
out:
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

static CK_RV crypt_final(CK_SESSION_HANDLE h, int enc, CK_BYTE_PTR out, CK_ULONG_PTR outl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = enc ? &s->enc : &s->dec;
    if (!op->active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (!outl) {
        op_reset(op);
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!op->cctx || mech_is_keywrap(op->mech)) {
        unsigned char *data = op->buf;
        size_t dl = op->buf ? op->buflen : 0;
        op->buf = NULL;
        size_t cap = op->bufcap;
        op->buflen = op->bufcap = 0;
        rv = crypt_run(op, enc, data ? data : (unsigned char *)"", dl, out, outl);
        if (op->active) {          /* kept for a retry: restore the collected input */
            op->buf = data;
            op->buflen = dl;
            op->bufcap = cap;
        } else if (data) {
            OPENSSL_clear_free(data, cap);
        }
        goto out;
    }
    size_t pend = op->outlen, need;
    if (!op->pad && pend) {
        op_reset(op);
        rv = enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
        goto out;
    }
    if (op->pad && !enc && pend != op->block) {
        op_reset(op);
        rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
        goto out;
    }
    need = op->pad ? op->block : 0;
    if (!out) {
        *outl = need;
        goto out;
    }
    if (*outl < need) {
        *outl = need;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    unsigned char tmp[32];
    int l = 0;
    if (!EVP_CipherFinal_ex(op->cctx, tmp, &l))
        rv = enc ? CKR_FUNCTION_FAILED : CKR_ENCRYPTED_DATA_INVALID;
    else {
        memcpy(out, tmp, (size_t)l);
        *outl = (CK_ULONG)l;
    }
    OPENSSL_cleanse(tmp, sizeof(tmp));
    op_reset(op);
out:
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return crypt_init(h, m, k, 1); }
CK_RV C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return crypt_init(h, m, k, 0); }

CK_RV C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR o, CK_ULONG_PTR ol)
{
    return crypt_single(h, 1, d, dl, o, ol);
}

CK_RV C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR o, CK_ULONG_PTR ol)
{
    return crypt_single(h, 0, d, dl, o, ol);
}

CK_RV C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR o, CK_ULONG_PTR ol)
{
    return crypt_update(h, 1, d, dl, o, ol);
}

CK_RV C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR o, CK_ULONG_PTR ol)
{
    return crypt_update(h, 0, d, dl, o, ol);
}

CK_RV C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR o, CK_ULONG_PTR ol) { return crypt_final(h, 1, o, ol); }
CK_RV C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR o, CK_ULONG_PTR ol) { return crypt_final(h, 0, o, ol); }

/* ================================================================== digest */

CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = &s->digest;
    if (!mech) {
        op_reset(op);
    } else if (op->active) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        const st_mech *m = mech_find(mech->mechanism);
        const EVP_MD *md = md_for(mech->mechanism);
        if (!m || !(m->flags & CKF_DIGEST) || !md)
            rv = CKR_MECHANISM_INVALID;
        else if (mech->ulParameterLen)
            rv = CKR_MECHANISM_PARAM_INVALID;
        else if (!(op->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(op->md, md, NULL))
            rv = CKR_HOST_MEMORY;
        if (rv == CKR_OK) {
            op->mech = mech->mechanism;
            op->outlen = (size_t)EVP_MD_get_size(md);
            op->active = 1;
        } else {
            op_reset(op);
        }
    }
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

static CK_RV digest_out(st_op *op, CK_BYTE_PTR out, CK_ULONG_PTR outl, int *done)
{
    *done = 0;
    if (!out) {
        *outl = op->outlen;
        return CKR_OK;
    }
    if (*outl < op->outlen) {
        *outl = op->outlen;
        return CKR_BUFFER_TOO_SMALL;
    }
    unsigned int l = 0;
    *done = 1;
    if (!EVP_DigestFinal_ex(op->md, out, &l))
        return CKR_FUNCTION_FAILED;
    *outl = l;
    return CKR_OK;
}

CK_RV C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR out, CK_ULONG_PTR outl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = &s->digest;
    int done = 0;
    if (!op->active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (!outl || (!d && dl)) {
        rv = CKR_ARGUMENTS_BAD;
        done = 1;
    } else if (out && *outl >= op->outlen && dl && !EVP_DigestUpdate(op->md, d, dl)) {
        rv = CKR_FUNCTION_FAILED;
        done = 1;
    } else
        rv = digest_out(op, out, outl, &done);
    if (done)
        op_reset(op);
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = &s->digest;
    if (!op->active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    else if ((!d && dl) || (dl && !EVP_DigestUpdate(op->md, d, dl))) {
        rv = d ? CKR_FUNCTION_FAILED : CKR_ARGUMENTS_BAD;
        op_reset(op);
    }
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = &s->digest;
    st_keysnap k;
    memset(&k, 0, sizeof(k));
    if (!op->active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
    } else {
        pthread_mutex_lock(&g_st.lock);
        rv = snap_key(s, key, 0, &k);
        pthread_mutex_unlock(&g_st.lock);
        if (rv == CKR_OK && k.cls != CKO_SECRET_KEY)
            rv = CKR_KEY_INDIGESTIBLE;
        if (rv == CKR_OK && !EVP_DigestUpdate(op->md, k.secret, k.slen))
            rv = CKR_FUNCTION_FAILED;
        if (rv != CKR_OK)
            op_reset(op);
    }
    snap_free(&k);
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = &s->digest;
    int done = 0;
    if (!op->active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (!outl) {
        rv = CKR_ARGUMENTS_BAD;
        done = 1;
    } else
        rv = digest_out(op, out, outl, &done);
    if (done)
        op_reset(op);
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

/* ================================================================== sign / verify */

static CK_RV sv_init(st_session *s, st_op *op, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key, int sign)
{
    CK_RV rv;
    st_keysnap k;
    CK_MECHANISM_TYPE mt = mech->mechanism;
    const st_mech *m = mech_find(mt);
    if (!m || !(m->flags & (sign ? CKF_SIGN : CKF_VERIFY)))
        return CKR_MECHANISM_INVALID;
    if (mech->ulParameterLen && !mech->pParameter)
        return CKR_MECHANISM_PARAM_INVALID;

    pthread_mutex_lock(&g_st.lock);
    rv = snap_key(s, key, sign ? CKA_SIGN : CKA_VERIFY, &k);
    pthread_mutex_unlock(&g_st.lock);
    if (rv != CKR_OK) {
        snap_free(&k);
        return rv;
    }
    op->mech = mt;
    int hmac = mt == CKM_SHA256_HMAC || mt == CKM_RACENTRE_SM3_HMAC;
    CK_OBJECT_CLASS want = hmac ? CKO_SECRET_KEY : sign ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY;
    if (k.cls != want) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    switch (mt) {
    case CKM_SM2_SM3:
    case CKM_SM2_SIGN_RAW:
        if (k.curve != ST_CURVE_SM2) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
            break;
        }
        op->outlen = 64;
        op->curve = ST_CURVE_SM2;
        if (mt == CKM_SM2_SIGN_RAW) {
            if (mech->ulParameterLen)
                rv = CKR_MECHANISM_PARAM_INVALID;
            break;
        }
        if (mech->ulParameterLen) {
            if (mech->ulParameterLen >= 8192 || sm2_compute_z(mech->pParameter, mech->ulParameterLen, k.pub, op->z)) {
                rv = CKR_MECHANISM_PARAM_INVALID;
                break;
            }
        } else if (k.zdef_ok) {
            memcpy(op->z, k.zdef, 32);
        } else if (sm2_compute_z((const unsigned char *)RACENTRE_SM2_DEFAULT_ID, RACENTRE_SM2_DEFAULT_ID_LEN,
                                 k.pub, op->z)) {
            rv = CKR_FUNCTION_FAILED;
            break;
        }
        if (!(op->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(op->md, g_st.sm3, NULL) ||
            !EVP_DigestUpdate(op->md, op->z, 32))
            rv = CKR_HOST_MEMORY;
        break;
    case CKM_ECDSA:
    case CKM_ECDSA_SHA256:
    case CKM_ECDSA_SHA384:
        if (k.ktype != CKK_EC || k.curve == ST_CURVE_SM2 || k.curve == ST_CURVE_NONE) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
            break;
        }
        if (mech->ulParameterLen) {
            rv = CKR_MECHANISM_PARAM_INVALID;
            break;
        }
        op->curve = k.curve;
        op->outlen = 2 * curve_bytes(k.curve);
        if (mt != CKM_ECDSA && (!(op->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(op->md, md_for(mt), NULL)))
            rv = CKR_HOST_MEMORY;
        break;
    case CKM_RSA_PKCS:
    case CKM_SHA256_RSA_PKCS: case CKM_SHA384_RSA_PKCS: case CKM_SHA512_RSA_PKCS:
    case CKM_RSA_PKCS_PSS:
    case CKM_SHA256_RSA_PKCS_PSS: case CKM_SHA384_RSA_PKCS_PSS: case CKM_SHA512_RSA_PKCS_PSS:
        if (k.ktype != CKK_RSA) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
            break;
        }
        op->outlen = (size_t)EVP_PKEY_get_size(k.pkey);
        op->sig_md = md_for(mt);
        if (mt == CKM_RSA_PKCS || mt == CKM_SHA256_RSA_PKCS || mt == CKM_SHA384_RSA_PKCS || mt == CKM_SHA512_RSA_PKCS) {
            if (mech->ulParameterLen)
                rv = CKR_MECHANISM_PARAM_INVALID;
        } else {
            CK_RSA_PKCS_PSS_PARAMS pp;
            if (mech->ulParameterLen != sizeof(pp)) {
                rv = CKR_MECHANISM_PARAM_INVALID;
                break;
            }
            memcpy(&pp, mech->pParameter, sizeof(pp));
            const EVP_MD *h = md_for(pp.hashAlg);
            op->mgf_md = md_for_ckg(pp.mgf);
            if (!h || !op->mgf_md || (op->sig_md && h != op->sig_md) || pp.sLen > 1024 ||
                pp.hashAlg == CKM_SM3) {
                rv = CKR_MECHANISM_PARAM_INVALID;
                break;
            }
            op->sig_md = h;
            op->salt_len = (int)pp.sLen;
            op->pad = 1;      /* PSS */
        }
        if (rv == CKR_OK && mt != CKM_RSA_PKCS && mt != CKM_RSA_PKCS_PSS &&
            (!(op->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(op->md, op->sig_md, NULL)))
            rv = CKR_HOST_MEMORY;
        break;
    case CKM_SHA256_HMAC:
    case CKM_RACENTRE_SM3_HMAC: {
        if (k.ktype != CKK_GENERIC_SECRET) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
            break;
        }
        if (mech->ulParameterLen) {
            rv = CKR_MECHANISM_PARAM_INVALID;
            break;
        }
        OSSL_PARAM p[2];
        p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, mt == CKM_SHA256_HMAC ? "SHA256" : "SM3", 0);
        p[1] = OSSL_PARAM_construct_end();
        op->outlen = 32;
        if (!(op->mac = EVP_MAC_CTX_new(g_st.hmac)) || !EVP_MAC_init(op->mac, k.secret, k.slen, p))
            rv = CKR_FUNCTION_FAILED;
        break;
    }
    default:
        rv = CKR_MECHANISM_INVALID;
    }
    if (rv == CKR_OK) {
        op->pkey = k.pkey;
        k.pkey = NULL;
        op->sm2 = k.sm2;
        k.sm2 = NULL;
        op->active = 1;
    }
out:
    snap_free(&k);
    return rv;
}

static CK_RV sv_update(st_op *op, const unsigned char *d, size_t n)
{
    if (!n)
        return CKR_OK;
    if (op->md)
        return EVP_DigestUpdate(op->md, d, n) ? CKR_OK : CKR_FUNCTION_FAILED;
    if (op->mac)
        return EVP_MAC_update(op->mac, d, n) ? CKR_OK : CKR_FUNCTION_FAILED;
    return acc(op, d, n);
}

/* the to-be-signed value: digest of the input, or the input itself */
static CK_RV sv_tbs(st_op *op, unsigned char *dg, size_t *dl, const unsigned char **tbs, size_t *tbsl)
{
    if (op->md) {
        unsigned int l = 0;
        if (!EVP_DigestFinal_ex(op->md, dg, &l))
            return CKR_FUNCTION_FAILED;
        *dl = l;
        *tbs = dg;
        *tbsl = l;
    } else {
        *tbs = op->buf ? op->buf : (const unsigned char *)"";
        *tbsl = op->buflen;
    }
    if ((op->mech == CKM_SM2_SIGN_RAW) && *tbsl != 32)
        return CKR_DATA_LEN_RANGE;
    if (op->mech == CKM_ECDSA && (*tbsl == 0 || *tbsl > 64))
        return CKR_DATA_LEN_RANGE;
    if (op->mech == CKM_RSA_PKCS_PSS && *tbsl != (size_t)EVP_MD_get_size(op->sig_md))
        return CKR_DATA_LEN_RANGE;
    if (op->mech == CKM_RSA_PKCS && *tbsl > op->outlen - 11)
        return CKR_DATA_LEN_RANGE;
    return CKR_OK;
}

static EVP_PKEY_CTX *ec_ctx(st_session *s, EVP_PKEY *pk, int sign)
{
    EVP_PKEY_CTX **cache = sign ? &s->sign_pctx : &s->verify_pctx;
    EVP_PKEY **ckey = sign ? &s->sign_pctx_key : &s->verify_pctx_key;
    if (*cache && *ckey == pk)
        return *cache;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!c || (sign ? EVP_PKEY_sign_init(c) : EVP_PKEY_verify_init(c)) <= 0) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    EVP_PKEY_CTX_free(*cache);
    EVP_PKEY_free(*ckey);
    EVP_PKEY_up_ref(pk);
    *cache = c;
    *ckey = pk;
    return c;
}

static CK_RV rsa_setup(st_op *op, EVP_PKEY_CTX *c)
{
    if (op->pad) {
        if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_signature_md(c, op->sig_md) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(c, op->mgf_md) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(c, op->salt_len) <= 0)
            return CKR_MECHANISM_PARAM_INVALID;
    } else {
        if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) <= 0 ||
            (op->sig_md && EVP_PKEY_CTX_set_signature_md(c, op->sig_md) <= 0))
            return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV sign_final(st_session *s, st_op *op, unsigned char *sig, CK_ULONG *sigl)
{
    unsigned char dg[64];
    size_t dl = 0, tbsl;
    const unsigned char *tbs;
    CK_RV rv = sv_tbs(op, dg, &dl, &tbs, &tbsl);
    if (rv != CKR_OK)
        return rv;
    if (op->mac) {
        size_t l = 0;
        if (!EVP_MAC_final(op->mac, sig, &l, *sigl))
            return CKR_FUNCTION_FAILED;
        *sigl = l;
        return CKR_OK;
    }
    if (op->sm2) {                      /* SM2 on our own code: tbs is e, 32 bytes */
        if (tbsl != 32 || sm2p256_sign(op->sm2, tbs, sig))
            return CKR_FUNCTION_FAILED;
        *sigl = 64;
        return CKR_OK;
    }
    if (op->curve != ST_CURVE_NONE) {
        unsigned char der[160];
        size_t derl = sizeof(der);
        EVP_PKEY_CTX *c = ec_ctx(s, op->pkey, 1);
        if (!c)
            return CKR_FUNCTION_FAILED;
        if (EVP_PKEY_sign(c, der, &derl, tbs, tbsl) <= 0 || sig_der_to_raw(der, derl, sig, op->outlen / 2))
            return CKR_FUNCTION_FAILED;
        *sigl = op->outlen;
        return CKR_OK;
    }
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, op->pkey, NULL);
    size_t l = *sigl;
    if (!c)
        return CKR_HOST_MEMORY;
    if (EVP_PKEY_sign_init(c) <= 0)
        rv = CKR_FUNCTION_FAILED;
    else if ((rv = rsa_setup(op, c)) == CKR_OK && EVP_PKEY_sign(c, sig, &l, tbs, tbsl) <= 0)
        rv = CKR_FUNCTION_FAILED;
    EVP_PKEY_CTX_free(c);
    if (rv == CKR_OK)
        *sigl = l;
    return rv;
}

static CK_RV verify_final(st_session *s, st_op *op, const unsigned char *sig, size_t sigl)
{
    unsigned char dg[64];
    size_t dl = 0, tbsl;
    const unsigned char *tbs;
    if (!sig && sigl)
        return CKR_ARGUMENTS_BAD;
    if (sigl != op->outlen)
        return CKR_SIGNATURE_LEN_RANGE;
    CK_RV rv = sv_tbs(op, dg, &dl, &tbs, &tbsl);
    if (rv != CKR_OK)
        return rv;
    if (op->mac) {
        unsigned char mac[64];
        size_t l = 0;
        if (!EVP_MAC_final(op->mac, mac, &l, sizeof(mac)))
            return CKR_FUNCTION_FAILED;
        return (l == sigl && CRYPTO_memcmp(mac, sig, l) == 0) ? CKR_OK : CKR_SIGNATURE_INVALID;
    }
    if (op->sm2) {
        if (tbsl != 32)
            return CKR_FUNCTION_FAILED;
        return sm2p256_verify(sm2p256_key_pub(op->sm2), tbs, sig) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
    }
    if (op->curve != ST_CURVE_NONE) {
        unsigned char der[160];
        size_t derl;
        EVP_PKEY_CTX *c = ec_ctx(s, op->pkey, 0);
        if (!c)
            return CKR_FUNCTION_FAILED;
        if (sig_raw_to_der(sig, op->outlen / 2, der, &derl))
            return CKR_SIGNATURE_INVALID;
        return EVP_PKEY_verify(c, der, derl, tbs, tbsl) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
    }
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, op->pkey, NULL);
    if (!c)
        return CKR_HOST_MEMORY;
    if (EVP_PKEY_verify_init(c) <= 0)
        rv = CKR_FUNCTION_FAILED;
    else if ((rv = rsa_setup(op, c)) == CKR_OK && EVP_PKEY_verify(c, sig, sigl, tbs, tbsl) != 1)
        rv = CKR_SIGNATURE_INVALID;
    EVP_PKEY_CTX_free(c);
    return rv;
}

static CK_RV sv_init_entry(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key, int sign)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = sign ? &s->sign : &s->verify;
    if (!mech) {
        op_reset(op);
    } else if (op->active) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        rv = sv_init(s, op, mech, key, sign);
        if (rv != CKR_OK)
            op_reset(op);
    }
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return sv_init_entry(h, m, k, 1); }
CK_RV C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return sv_init_entry(h, m, k, 0); }

/* data == NULL && dl == (CK_ULONG)-1 means "final, no data" */
static CK_RV sign_common(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, int final_only, CK_BYTE_PTR sig,
                         CK_ULONG_PTR sigl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = &s->sign;
    if (!op->active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (!sigl || (!final_only && !d && dl)) {
        rv = CKR_ARGUMENTS_BAD;
        op_reset(op);
        goto out;
    }
    if (!sig) {
        *sigl = op->outlen;
        goto out;
    }
    if (*sigl < op->outlen) {
        *sigl = op->outlen;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    if (!final_only)
        rv = sv_update(op, d, dl);
    if (rv == CKR_OK)
        rv = sign_final(s, op, sig, sigl);
    op_reset(op);
out:
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR sig, CK_ULONG_PTR sigl)
{
    return sign_common(h, d, dl, 0, sig, sigl);
}

CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sigl)
{
    return sign_common(h, NULL, 0, 1, sig, sigl);
}

static CK_RV sv_update_entry(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, int sign)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = sign ? &s->sign : &s->verify;
    if (!op->active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (!d && dl)
        rv = CKR_ARGUMENTS_BAD;
    else
        rv = sv_update(op, d, dl);
    if (rv != CKR_OK && op->active)
        op_reset(op);
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl) { return sv_update_entry(h, d, dl, 1); }
CK_RV C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl) { return sv_update_entry(h, d, dl, 0); }

static CK_RV verify_common(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, int final_only, CK_BYTE_PTR sig,
                           CK_ULONG sigl)
{
    CK_RV rv;
    st_session *s = session_get(h, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    st_op *op = &s->verify;
    if (!op->active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
    } else {
        if (!final_only && !d && dl)
            rv = CKR_ARGUMENTS_BAD;
        else if (!final_only)
            rv = sv_update(op, d, dl);
        if (rv == CKR_OK)
            rv = verify_final(s, op, sig, sigl);
        op_reset(op);
    }
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR sig, CK_ULONG sigl)
{
    return verify_common(h, d, dl, 0, sig, sigl);
}

CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sigl)
{
    return verify_common(h, NULL, 0, 1, sig, sigl);
}

/* ------------------------------------------------------------------ not supported */

CK_RV C_SignRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    (void)h; (void)m; (void)k;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_SignRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG_PTR sl)
{
    (void)h; (void)d; (void)dl; (void)s; (void)sl;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    (void)h; (void)m; (void)k;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG sl, CK_BYTE_PTR d, CK_ULONG_PTR dl)
{
    (void)h; (void)s; (void)sl; (void)d; (void)dl;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
{
    (void)h; (void)a; (void)b; (void)c; (void)d;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
{
    (void)h; (void)a; (void)b; (void)c; (void)d;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
{
    (void)h; (void)a; (void)b; (void)c; (void)d;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
{
    (void)h; (void)a; (void)b; (void)c; (void)d;
    return CKR_FUNCTION_NOT_SUPPORTED;
}
