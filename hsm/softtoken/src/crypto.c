/*
 * crypto.c - mechanism implementations shared by the PKCS#11 entry points:
 *   symmetric ciphers (SM4 GB/T 32907 ECB/CBC; AES ECB/CBC/CBC_PAD, v2.40 current
 *   mechanisms 2.9; AES key wrap RFC 3394 and with padding RFC 5649, 2.14),
 *   SM2 public-key encryption (GB/T 32918.4, output = GM/T 0009 DER SM2Cipher; sm2p256.c, or
 *   OpenSSL with RACENTRE_SOFTTOKEN_SM2_IMPL=openssl),
 *   RSA PKCS #1 v1.5 encryption, and the key snapshot taken at each C_xxxInit.
 */
#include "st.h"
#include "crypto.h"
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <string.h>

void snap_free(st_keysnap *k)
{
    EVP_PKEY_free(k->pkey);
    sm2p256_key_free(k->sm2);
    OPENSSL_cleanse(k, sizeof(*k));
}

/* g_st.lock held: check class/usage of a key and copy what an operation needs */
CK_RV snap_key(st_session *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE usage, st_keysnap *k)
{
    st_object *o;
    CK_RV rv = obj_lookup(s, h, &o);
    memset(k, 0, sizeof(*k));
    if (rv != CKR_OK)
        return rv == CKR_OBJECT_HANDLE_INVALID ? CKR_KEY_HANDLE_INVALID : rv;
    if (o->cls != CKO_PUBLIC_KEY && o->cls != CKO_PRIVATE_KEY && o->cls != CKO_SECRET_KEY)
        return CKR_KEY_HANDLE_INVALID;
    if (usage && !obj_bool(o, usage, CK_FALSE))
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    if (o->broken)
        return CKR_DEVICE_ERROR;
    if (o->locked && o->cls != CKO_PUBLIC_KEY)
        return CKR_USER_NOT_LOGGED_IN;
    k->cls = o->cls;
    k->ktype = o->ktype;
    k->curve = o->curve;
    k->extractable = obj_bool(o, CKA_EXTRACTABLE, CK_FALSE);
    if (o->cls == CKO_SECRET_KEY) {
        st_attr *v = obj_attr(o, CKA_VALUE);
        if (!v || v->len > sizeof(k->secret))
            return CKR_KEY_HANDLE_INVALID;
        memcpy(k->secret, v->val, v->len);
        k->slen = v->len;
        return CKR_OK;
    }
    int own_sm2 = o->curve == ST_CURVE_SM2 && st_sm2_fast();
    if ((rv = own_sm2 ? key_build_sm2(o) : key_build_pkey(o)) != CKR_OK)
        return rv;
    if (o->curve != ST_CURVE_NONE) {
        if (ec_point_raw(o, k->pub, &k->publ) != CKR_OK)
            return CKR_KEY_HANDLE_INVALID;
        if (o->zdef_ok) {
            memcpy(k->zdef, o->zdef, 32);
            k->zdef_ok = 1;
        }
    }
    if (own_sm2) {
        sm2p256_key_ref(o->sm2);
        k->sm2 = o->sm2;
        return CKR_OK;
    }
    if (!EVP_PKEY_up_ref(o->pkey))
        return CKR_GENERAL_ERROR;
    k->pkey = o->pkey;
    return CKR_OK;
}

/* ------------------------------------------------------------------ symmetric */

static const EVP_CIPHER *cipher_for(CK_MECHANISM_TYPE m, size_t klen, int *pad, size_t *block)
{
    *pad = 0;
    *block = 16;
    switch (m) {
    case CKM_SM4_ECB: return klen == 16 ? EVP_sm4_ecb() : NULL;
    case CKM_SM4_CBC: return klen == 16 ? EVP_sm4_cbc() : NULL;
    case CKM_RACENTRE_SM4_CBC_PAD: *pad = 1; return klen == 16 ? EVP_sm4_cbc() : NULL;
    case CKM_AES_ECB:
        return klen == 16 ? EVP_aes_128_ecb() : klen == 24 ? EVP_aes_192_ecb() : klen == 32 ? EVP_aes_256_ecb() : NULL;
    case CKM_AES_CBC_PAD:
        *pad = 1;
        /* fall through */
    case CKM_AES_CBC:
        return klen == 16 ? EVP_aes_128_cbc() : klen == 24 ? EVP_aes_192_cbc() : klen == 32 ? EVP_aes_256_cbc() : NULL;
    case CKM_AES_KEY_WRAP:
        *block = 8;
        return klen == 16 ? EVP_aes_128_wrap() : klen == 24 ? EVP_aes_192_wrap() : klen == 32 ? EVP_aes_256_wrap() : NULL;
    case CKM_AES_KEY_WRAP_PAD:
        *block = 8;
        return klen == 16 ? EVP_aes_128_wrap_pad() : klen == 24 ? EVP_aes_192_wrap_pad()
             : klen == 32 ? EVP_aes_256_wrap_pad() : NULL;
    default:
        return NULL;
    }
}

int mech_is_symmetric(CK_MECHANISM_TYPE m)
{
    return m == CKM_SM4_ECB || m == CKM_SM4_CBC || m == CKM_RACENTRE_SM4_CBC_PAD || m == CKM_AES_ECB ||
           m == CKM_AES_CBC || m == CKM_AES_CBC_PAD || m == CKM_AES_KEY_WRAP || m == CKM_AES_KEY_WRAP_PAD;
}

int mech_is_keywrap(CK_MECHANISM_TYPE m)
{
    return m == CKM_AES_KEY_WRAP || m == CKM_AES_KEY_WRAP_PAD;
}

static CK_KEY_TYPE sym_keytype(CK_MECHANISM_TYPE m)
{
    return (m == CKM_SM4_ECB || m == CKM_SM4_CBC || m == CKM_RACENTRE_SM4_CBC_PAD) ? CKK_SM4 : CKK_AES;
}

/* set up op->cctx for a symmetric mechanism */
CK_RV sym_init(st_op *op, const CK_MECHANISM *mech, const st_keysnap *k, int enc)
{
    const unsigned char *iv = NULL;
    if (k->cls != CKO_SECRET_KEY || k->ktype != sym_keytype(mech->mechanism))
        return CKR_KEY_TYPE_INCONSISTENT;
    const EVP_CIPHER *c = cipher_for(mech->mechanism, k->slen, &op->pad, &op->block);
    if (!c)
        return CKR_KEY_SIZE_RANGE;
    switch (mech->mechanism) {
    case CKM_SM4_CBC: case CKM_RACENTRE_SM4_CBC_PAD: case CKM_AES_CBC: case CKM_AES_CBC_PAD:
        if (!mech->pParameter || mech->ulParameterLen != 16)
            return CKR_MECHANISM_PARAM_INVALID;
        iv = mech->pParameter;
        break;
    case CKM_AES_KEY_WRAP:
        if (mech->ulParameterLen == 8 && mech->pParameter)
            iv = mech->pParameter;
        else if (mech->ulParameterLen != 0)
            return CKR_MECHANISM_PARAM_INVALID;
        break;
    case CKM_AES_KEY_WRAP_PAD:
        if (mech->ulParameterLen == 4 && mech->pParameter)
            iv = mech->pParameter;
        else if (mech->ulParameterLen != 0)
            return CKR_MECHANISM_PARAM_INVALID;
        break;
    default:
        if (mech->ulParameterLen != 0)
            return CKR_MECHANISM_PARAM_INVALID;
    }
    op->cctx = EVP_CIPHER_CTX_new();
    if (!op->cctx)
        return CKR_HOST_MEMORY;
    if (mech_is_keywrap(mech->mechanism))
        EVP_CIPHER_CTX_set_flags(op->cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (!EVP_CipherInit_ex(op->cctx, c, NULL, k->secret, iv, enc))
        return CKR_FUNCTION_FAILED;
    if (!mech_is_keywrap(mech->mechanism))
        EVP_CIPHER_CTX_set_padding(op->cctx, op->pad);
    op->mech = mech->mechanism;
    return CKR_OK;
}

/* one-shot symmetric transform with the size-query convention; op is consumed on success */
CK_RV sym_oneshot(st_op *op, int enc, const unsigned char *in, size_t inl, unsigned char *out, CK_ULONG *outl)
{
    size_t need;
    if (mech_is_keywrap(op->mech)) {
        int padded = op->mech == CKM_AES_KEY_WRAP_PAD;
        if (enc) {
            if (padded ? inl == 0 : (inl < 16 || inl % 8))
                return CKR_DATA_LEN_RANGE;
            need = padded ? ((inl + 7) / 8) * 8 + 8 : inl + 8;
        } else {
            if (inl < 16 || inl % 8)
                return CKR_ENCRYPTED_DATA_LEN_RANGE;
            need = inl - 8;
        }
    } else if (op->pad) {
        if (!enc && (inl == 0 || inl % op->block))
            return CKR_ENCRYPTED_DATA_LEN_RANGE;
        need = enc ? (inl / op->block + 1) * op->block : inl;
    } else {
        if (inl % op->block)
            return enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
        need = inl;
    }
    if (!out) {
        *outl = need;
        return ST_SIZE_QUERY;     /* internal marker: size query answered */
    }
    if (*outl < need) {
        *outl = need;
        return CKR_BUFFER_TOO_SMALL;
    }
    int l1 = 0, l2 = 0;
    if (!EVP_CipherUpdate(op->cctx, out, &l1, in, (int)inl) || l1 < 0)
        return enc ? CKR_FUNCTION_FAILED : CKR_ENCRYPTED_DATA_INVALID;
    if (!EVP_CipherFinal_ex(op->cctx, out + l1, &l2)) {
        OPENSSL_cleanse(out, need);
        return enc ? CKR_FUNCTION_FAILED : CKR_ENCRYPTED_DATA_INVALID;
    }
    *outl = (CK_ULONG)(l1 + l2);
    return CKR_OK;
}

/* ------------------------------------------------------------------ asymmetric encryption */

/* SM2 on our own code (sm2p256.c), same conventions as the OpenSSL path below: a size query
 * answers OpenSSL's bound for encryption and the exact length for decryption */
static CK_RV sm2_crypt(sm2p256_key *k, int enc, const unsigned char *in, size_t inl, unsigned char *out,
                       CK_ULONG *outl)
{
    size_t need;
    if (enc) {
        if (inl == 0 || inl > ((size_t)1 << 30))
            return CKR_DATA_LEN_RANGE;
        need = sm2p256_cipher_bound(inl);
    } else if (!sm2p256_key_has_priv(k) || sm2p256_plain_len(in, inl, &need)) {
        return CKR_ENCRYPTED_DATA_INVALID;
    }
    if (!out) {
        *outl = need;
        return CKR_OK;
    }
    if (*outl < need) {
        if (!enc) {
            *outl = need;
            return CKR_BUFFER_TOO_SMALL;
        }
        /* the bound may exceed the real size: encrypt into a scratch buffer first */
        unsigned char *tmp = OPENSSL_malloc(need);
        size_t tl = need;
        CK_RV rv;
        if (!tmp)
            return CKR_HOST_MEMORY;
        if (sm2p256_encrypt(sm2p256_key_pub(k), in, inl, tmp, &tl)) {
            rv = CKR_FUNCTION_FAILED;
        } else if (tl > *outl) {
            *outl = tl;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(out, tmp, tl);
            *outl = tl;
            rv = CKR_OK;
        }
        OPENSSL_free(tmp);
        return rv;
    }
    size_t ol = *outl;
    if (enc ? sm2p256_encrypt(sm2p256_key_pub(k), in, inl, out, &ol) : sm2p256_decrypt(k, in, inl, out, &ol))
        return enc ? CKR_FUNCTION_FAILED : CKR_ENCRYPTED_DATA_INVALID;
    *outl = ol;
    return CKR_OK;
}

CK_RV asym_crypt(CK_MECHANISM_TYPE m, EVP_PKEY *pk, sm2p256_key *sm2, int enc, const unsigned char *in, size_t inl,
                 unsigned char *out, CK_ULONG *outl)
{
    if (m == CKM_SM2_ENCRYPT && sm2)
        return sm2_crypt(sm2, enc, in, inl, out, outl);
    if (!pk)
        return CKR_FUNCTION_FAILED;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    CK_RV rv = CKR_FUNCTION_FAILED;
    size_t need = 0;
    if (!c)
        return CKR_HOST_MEMORY;
    if ((enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) <= 0)
        goto done;
    if (m == CKM_RSA_PKCS && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) <= 0)
        goto done;
    if (m == CKM_SM2_ENCRYPT && enc && inl == 0) {
        rv = CKR_DATA_LEN_RANGE;
        goto done;
    }
    if ((enc ? EVP_PKEY_encrypt(c, NULL, &need, in, inl) : EVP_PKEY_decrypt(c, NULL, &need, in, inl)) <= 0) {
        rv = enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_INVALID;
        goto done;
    }
    if (!out) {
        *outl = need;
        rv = CKR_OK;
        goto done;
    }
    if (*outl < need) {
        /* the bound may exceed the real size: decrypt into a scratch buffer first */
        unsigned char *tmp = OPENSSL_malloc(need);
        size_t tl = need;
        if (!tmp) {
            rv = CKR_HOST_MEMORY;
            goto done;
        }
        int ok = enc ? EVP_PKEY_encrypt(c, tmp, &tl, in, inl) : EVP_PKEY_decrypt(c, tmp, &tl, in, inl);
        if (ok <= 0) {
            rv = enc ? CKR_FUNCTION_FAILED : CKR_ENCRYPTED_DATA_INVALID;
        } else if (tl > *outl) {
            *outl = tl;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(out, tmp, tl);
            *outl = tl;
            rv = CKR_OK;
        }
        OPENSSL_clear_free(tmp, need);
        goto done;
    }
    size_t ol = *outl;
    if ((enc ? EVP_PKEY_encrypt(c, out, &ol, in, inl) : EVP_PKEY_decrypt(c, out, &ol, in, inl)) <= 0) {
        rv = enc ? CKR_FUNCTION_FAILED : CKR_ENCRYPTED_DATA_INVALID;
        goto done;
    }
    *outl = ol;
    rv = CKR_OK;
done:
    EVP_PKEY_CTX_free(c);
    return rv;
}
