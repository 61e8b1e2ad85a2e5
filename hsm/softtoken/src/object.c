/*
 * object.c - the object model (PKCS#11 v2.40 base section 4: object classes, common /
 * storage / key / public / private / secret key attributes, the CKA_SENSITIVE and
 * CKA_EXTRACTABLE rules of 4.9 and 4.10 and C_GetAttributeValue's rules of 5.7).
 *
 * An object is a list of attributes, stored complete with defaults so that reading one
 * is a simple look-up.  Attributes holding key material (and the value of CKA_PRIVATE
 * data objects and certificates) are flagged "secret": store.c keeps them encrypted under
 * the token master key and they are wiped from memory at logout.
 */
#include "st.h"
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

st_object *obj_new(void)
{
    st_object *o = calloc(1, sizeof(*o));
    if (o)
        o->ktype = ST_UNAVAIL;
    return o;
}

void obj_free(st_object *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nattrs; i++)
        OPENSSL_clear_free(o->attrs[i].val, o->attrs[i].len);
    free(o->attrs);
    OPENSSL_free(o->enc);
    EVP_PKEY_free(o->pkey);
    sm2p256_key_free(o->sm2);
    OPENSSL_cleanse(o, sizeof(*o));
    free(o);
}

st_attr *obj_attr(const st_object *o, CK_ATTRIBUTE_TYPE t)
{
    for (size_t i = 0; i < o->nattrs; i++)
        if (o->attrs[i].type == t)
            return &o->attrs[i];
    return NULL;
}

int obj_set(st_object *o, CK_ATTRIBUTE_TYPE t, const void *v, CK_ULONG len)
{
    unsigned char *copy = OPENSSL_malloc(len ? len : 1);
    if (!copy)
        return -1;
    if (len)
        memcpy(copy, v, len);
    st_attr *a = obj_attr(o, t);
    if (!a) {
        if (st_grow((void **)&o->attrs, &o->cap, o->nattrs + 1, sizeof(st_attr))) {
            OPENSSL_free(copy);
            return -1;
        }
        a = &o->attrs[o->nattrs++];
        a->type = t;
        a->secret = 0;
    } else {
        OPENSSL_clear_free(a->val, a->len);
    }
    a->val = copy;
    a->len = len;
    return 0;
}

int obj_set_bool(st_object *o, CK_ATTRIBUTE_TYPE t, CK_BBOOL b)
{
    return obj_set(o, t, &b, sizeof(b));
}

int obj_set_ulong(st_object *o, CK_ATTRIBUTE_TYPE t, CK_ULONG v)
{
    return obj_set(o, t, &v, sizeof(v));
}

void obj_del(st_object *o, CK_ATTRIBUTE_TYPE t)
{
    for (size_t i = 0; i < o->nattrs; i++) {
        if (o->attrs[i].type == t) {
            OPENSSL_clear_free(o->attrs[i].val, o->attrs[i].len);
            o->attrs[i] = o->attrs[--o->nattrs];
            return;
        }
    }
}

CK_BBOOL obj_bool(const st_object *o, CK_ATTRIBUTE_TYPE t, CK_BBOOL dflt)
{
    st_attr *a = obj_attr(o, t);
    if (!a || a->len != sizeof(CK_BBOOL))
        return dflt;
    return a->val[0] ? CK_TRUE : CK_FALSE;
}

static CK_ULONG obj_ulong(const st_object *o, CK_ATTRIBUTE_TYPE t, CK_ULONG dflt)
{
    st_attr *a = obj_attr(o, t);
    CK_ULONG v;
    if (!a || a->len != sizeof(CK_ULONG))
        return dflt;
    memcpy(&v, a->val, sizeof(v));
    return v;
}

int obj_is_sm2(const st_object *o)
{
    return o->curve == ST_CURVE_SM2;
}

void obj_refresh_cache(st_object *o)
{
    o->cls = obj_ulong(o, CKA_CLASS, ST_UNAVAIL);
    o->ktype = obj_ulong(o, CKA_KEY_TYPE, ST_UNAVAIL);
    o->is_private = obj_bool(o, CKA_PRIVATE, CK_FALSE);
    o->is_token = obj_bool(o, CKA_TOKEN, CK_FALSE);
    o->curve = ST_CURVE_NONE;
    if (o->ktype == CKK_EC || o->ktype == CKK_SM2) {
        st_attr *p = obj_attr(o, CKA_EC_PARAMS);
        o->curve = p ? curve_from_params(p->val, p->len) : (o->ktype == CKK_SM2 ? ST_CURVE_SM2 : ST_CURVE_NONE);
    }
}

/* key components: returned only under the rules of v2.40 base 4.9 / 4.10 */
static int is_component(CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE t)
{
    if (cls == CKO_SECRET_KEY)
        return t == CKA_VALUE;
    if (cls == CKO_PRIVATE_KEY)
        return t == CKA_VALUE || t == CKA_PRIVATE_EXPONENT || t == CKA_PRIME_1 || t == CKA_PRIME_2 ||
               t == CKA_EXPONENT_1 || t == CKA_EXPONENT_2 || t == CKA_COEFFICIENT;
    return 0;
}

void obj_mark_secrets(st_object *o)
{
    for (size_t i = 0; i < o->nattrs; i++) {
        CK_ATTRIBUTE_TYPE t = o->attrs[i].type;
        o->attrs[i].secret = is_component(o->cls, t) || (o->is_private && t == CKA_VALUE);
    }
}

void obj_drop_secrets(st_object *o)
{
    size_t j = 0;
    int had = 0;
    for (size_t i = 0; i < o->nattrs; i++) {
        if (o->attrs[i].secret) {
            OPENSSL_clear_free(o->attrs[i].val, o->attrs[i].len);
            had = 1;
        } else {
            o->attrs[j++] = o->attrs[i];
        }
    }
    o->nattrs = j;
    EVP_PKEY_free(o->pkey);
    o->pkey = NULL;
    sm2p256_key_free(o->sm2);        /* the cached d and (1+d)^-1 are cleansed with it */
    o->sm2 = NULL;
    if (had || o->enc_len)
        o->locked = 1;
}

int obj_is_sensitive_attr(const st_object *o, CK_ATTRIBUTE_TYPE t)
{
    if (!is_component(o->cls, t))
        return 0;
    return obj_bool(o, CKA_SENSITIVE, CK_TRUE) || !obj_bool(o, CKA_EXTRACTABLE, CK_FALSE);
}

/* ------------------------------------------------------------------ templates */

const CK_ATTRIBUTE *tmpl_find(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
    const CK_ATTRIBUTE *r = NULL;
    for (CK_ULONG i = 0; i < n; i++)
        if (t[i].type == type)
            r = &t[i];
    return r;
}

enum { K_BYTES, K_BOOL, K_ULONG, K_DATE };

static int attr_kind(CK_ATTRIBUTE_TYPE t)
{
    switch (t) {
    case CKA_TOKEN: case CKA_PRIVATE: case CKA_MODIFIABLE: case CKA_COPYABLE: case CKA_DESTROYABLE:
    case CKA_TRUSTED: case CKA_DERIVE: case CKA_LOCAL: case CKA_ENCRYPT: case CKA_VERIFY:
    case CKA_VERIFY_RECOVER: case CKA_WRAP: case CKA_SENSITIVE: case CKA_DECRYPT: case CKA_SIGN:
    case CKA_SIGN_RECOVER: case CKA_UNWRAP: case CKA_EXTRACTABLE: case CKA_ALWAYS_SENSITIVE:
    case CKA_NEVER_EXTRACTABLE: case CKA_WRAP_WITH_TRUSTED: case CKA_ALWAYS_AUTHENTICATE:
        return K_BOOL;
    case CKA_CLASS: case CKA_KEY_TYPE: case CKA_CERTIFICATE_TYPE: case CKA_CERTIFICATE_CATEGORY:
    case CKA_KEY_GEN_MECHANISM: case CKA_VALUE_LEN: case CKA_MODULUS_BITS:
    case CKA_JAVA_MIDP_SECURITY_DOMAIN: case CKA_NAME_HASH_ALGORITHM:
        return K_ULONG;
    case CKA_START_DATE: case CKA_END_DATE:
        return K_DATE;
    default:
        return K_BYTES;
    }
}

CK_RV tmpl_check(const CK_ATTRIBUTE *t, CK_ULONG n)
{
    if (n && !t)
        return CKR_ARGUMENTS_BAD;
    for (CK_ULONG i = 0; i < n; i++) {
        if (t[i].ulValueLen && !t[i].pValue)
            return CKR_ATTRIBUTE_VALUE_INVALID;
        if (t[i].ulValueLen > (1UL << 20))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        switch (attr_kind(t[i].type)) {
        case K_BOOL:
            if (t[i].ulValueLen != sizeof(CK_BBOOL))
                return CKR_ATTRIBUTE_VALUE_INVALID;
            break;
        case K_ULONG:
            if (t[i].ulValueLen != sizeof(CK_ULONG))
                return CKR_ATTRIBUTE_VALUE_INVALID;
            break;
        case K_DATE:
            if (t[i].ulValueLen != 0 && t[i].ulValueLen != sizeof(CK_DATE))
                return CKR_ATTRIBUTE_VALUE_INVALID;
            break;
        }
    }
    return CKR_OK;
}

CK_RV tmpl_get_bool(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, CK_BBOOL *out, int *found)
{
    const CK_ATTRIBUTE *a = tmpl_find(t, n, type);
    *found = 0;
    if (!a)
        return CKR_OK;
    if (a->ulValueLen != sizeof(CK_BBOOL) || !a->pValue)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    *out = *(CK_BBOOL *)a->pValue ? CK_TRUE : CK_FALSE;
    *found = 1;
    return CKR_OK;
}

CK_RV tmpl_get_ulong(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, CK_ULONG *out, int *found)
{
    const CK_ATTRIBUTE *a = tmpl_find(t, n, type);
    *found = 0;
    if (!a)
        return CKR_OK;
    if (a->ulValueLen != sizeof(CK_ULONG) || !a->pValue)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    memcpy(out, a->pValue, sizeof(CK_ULONG));
    *found = 1;
    return CKR_OK;
}

/* ------------------------------------------------------------------ attribute sets */

static const CK_ATTRIBUTE_TYPE a_common[] = {
    CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE, CKA_LABEL, CKA_COPYABLE, CKA_DESTROYABLE,
};
static const CK_ATTRIBUTE_TYPE a_data[] = { CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE };
static const CK_ATTRIBUTE_TYPE a_cert[] = {
    CKA_CERTIFICATE_TYPE, CKA_TRUSTED, CKA_CERTIFICATE_CATEGORY, CKA_CHECK_VALUE, CKA_START_DATE,
    CKA_END_DATE, CKA_SUBJECT, CKA_ID, CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_VALUE, CKA_URL,
    CKA_HASH_OF_SUBJECT_PUBLIC_KEY, CKA_HASH_OF_ISSUER_PUBLIC_KEY, CKA_JAVA_MIDP_SECURITY_DOMAIN,
    CKA_NAME_HASH_ALGORITHM, CKA_PUBLIC_KEY_INFO,
};
static const CK_ATTRIBUTE_TYPE a_key[] = {
    CKA_KEY_TYPE, CKA_ID, CKA_START_DATE, CKA_END_DATE, CKA_DERIVE, CKA_LOCAL, CKA_KEY_GEN_MECHANISM,
};
static const CK_ATTRIBUTE_TYPE a_pub[] = {
    CKA_SUBJECT, CKA_ENCRYPT, CKA_VERIFY, CKA_VERIFY_RECOVER, CKA_WRAP, CKA_TRUSTED, CKA_PUBLIC_KEY_INFO,
    CKA_EC_PARAMS, CKA_EC_POINT, CKA_MODULUS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT,
};
static const CK_ATTRIBUTE_TYPE a_priv[] = {
    CKA_SUBJECT, CKA_SENSITIVE, CKA_DECRYPT, CKA_SIGN, CKA_SIGN_RECOVER, CKA_UNWRAP, CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_WRAP_WITH_TRUSTED, CKA_ALWAYS_AUTHENTICATE,
    CKA_PUBLIC_KEY_INFO, CKA_EC_PARAMS, CKA_EC_POINT, CKA_VALUE, CKA_MODULUS, CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT,
};
static const CK_ATTRIBUTE_TYPE a_secret[] = {
    CKA_SENSITIVE, CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP, CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_CHECK_VALUE, CKA_WRAP_WITH_TRUSTED, CKA_TRUSTED,
    CKA_VALUE, CKA_VALUE_LEN,
};

static int in_list(const CK_ATTRIBUTE_TYPE *l, size_t n, CK_ATTRIBUTE_TYPE t)
{
    for (size_t i = 0; i < n; i++)
        if (l[i] == t)
            return 1;
    return 0;
}
#define IN(l, t) in_list(l, ST_ARRAY_LEN(l), t)

static int attr_allowed(CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE t)
{
    if (IN(a_common, t))
        return 1;
    switch (cls) {
    case CKO_DATA: return IN(a_data, t);
    case CKO_CERTIFICATE: return IN(a_cert, t);
    case CKO_PUBLIC_KEY: return IN(a_key, t) || IN(a_pub, t);
    case CKO_PRIVATE_KEY: return IN(a_key, t) || IN(a_priv, t);
    case CKO_SECRET_KEY: return IN(a_key, t) || IN(a_secret, t);
    default: return 0;
    }
}

static int is_material(CK_ATTRIBUTE_TYPE t)
{
    return t == CKA_VALUE || t == CKA_EC_POINT || t == CKA_MODULUS || t == CKA_PRIVATE_EXPONENT ||
           t == CKA_PRIME_1 || t == CKA_PRIME_2 || t == CKA_EXPONENT_1 || t == CKA_EXPONENT_2 ||
           t == CKA_COEFFICIENT;
}

/*
 * Copy a caller's template into o (o->cls must be set).  origin tells which attributes the
 * caller may give: key material only for C_CreateObject; CKA_LOCAL & co. never.
 */
CK_RV obj_apply_template(st_object *o, const CK_ATTRIBUTE *t, CK_ULONG n, int origin)
{
    CK_RV rv = tmpl_check(t, n);
    if (rv != CKR_OK)
        return rv;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ATTRIBUTE_TYPE ty = t[i].type;
        /* usage flags of the other half of a key pair are ignored, not refused: generic
           templates (python-pkcs11's unwrap_key, some tools) send every usage flag */
        if ((o->cls == CKO_PRIVATE_KEY && (ty == CKA_ENCRYPT || ty == CKA_VERIFY || ty == CKA_WRAP ||
                                           ty == CKA_VERIFY_RECOVER)) ||
            (o->cls == CKO_PUBLIC_KEY && (ty == CKA_DECRYPT || ty == CKA_SIGN || ty == CKA_UNWRAP ||
                                          ty == CKA_SIGN_RECOVER)))
            continue;
        if (!attr_allowed(o->cls, ty))
            return CKR_ATTRIBUTE_TYPE_INVALID;
        if (ty == CKA_LOCAL || ty == CKA_ALWAYS_SENSITIVE || ty == CKA_NEVER_EXTRACTABLE ||
            ty == CKA_KEY_GEN_MECHANISM)
            return CKR_ATTRIBUTE_READ_ONLY;
        if (ty == CKA_CLASS) {
            CK_ULONG c;
            memcpy(&c, t[i].pValue, sizeof(c));
            if (c != o->cls)
                return CKR_TEMPLATE_INCONSISTENT;
        }
        if (origin != ST_ORIGIN_CREATE && is_material(ty) &&
            !(o->cls == CKO_DATA || o->cls == CKO_CERTIFICATE))
            return CKR_TEMPLATE_INCONSISTENT;
        if (origin != ST_ORIGIN_GENERATE && ty == CKA_MODULUS_BITS)
            return CKR_ATTRIBUTE_READ_ONLY;
        if (obj_set(o, ty, t[i].pValue, t[i].ulValueLen))
            return CKR_HOST_MEMORY;
    }
    return CKR_OK;
}

static int dflt_bool(st_object *o, CK_ATTRIBUTE_TYPE t, CK_BBOOL v)
{
    if (obj_attr(o, t))
        return 0;
    return obj_set_bool(o, t, v);
}

static int dflt_empty(st_object *o, CK_ATTRIBUTE_TYPE t)
{
    if (obj_attr(o, t))
        return 0;
    return obj_set(o, t, "", 0);
}

static CK_RV check_secret_len(CK_KEY_TYPE kt, CK_ULONG len)
{
    switch (kt) {
    case CKK_AES:
        return (len == 16 || len == 24 || len == 32) ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
    case CKK_SM4:
        return len == 16 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
    case CKK_GENERIC_SECRET:
        return (len >= 1 && len <= 512) ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
    default:
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
}

/* Fill defaults and check consistency; key material must be in place (except generate). */
CK_RV obj_finish(st_object *o, int origin, CK_MECHANISM_TYPE genmech)
{
    int gen = origin == ST_ORIGIN_GENERATE;
    int key = o->cls == CKO_PUBLIC_KEY || o->cls == CKO_PRIVATE_KEY || o->cls == CKO_SECRET_KEY;
    int priv_default = o->cls == CKO_PRIVATE_KEY || o->cls == CKO_SECRET_KEY;
    int err = 0;

    if (!obj_attr(o, CKA_CLASS))
        err |= obj_set_ulong(o, CKA_CLASS, o->cls);
    err |= dflt_bool(o, CKA_TOKEN, CK_FALSE);
    err |= dflt_bool(o, CKA_PRIVATE, priv_default ? CK_TRUE : CK_FALSE);
    err |= dflt_bool(o, CKA_MODIFIABLE, CK_TRUE);
    err |= dflt_bool(o, CKA_COPYABLE, CK_TRUE);
    err |= dflt_bool(o, CKA_DESTROYABLE, CK_TRUE);
    err |= dflt_empty(o, CKA_LABEL);

    if (o->cls == CKO_DATA) {
        err |= dflt_empty(o, CKA_APPLICATION);
        err |= dflt_empty(o, CKA_VALUE);
        err |= dflt_empty(o, CKA_OBJECT_ID);
    } else if (o->cls == CKO_CERTIFICATE) {
        CK_ULONG ct = obj_ulong(o, CKA_CERTIFICATE_TYPE, ST_UNAVAIL);
        if (!obj_attr(o, CKA_CERTIFICATE_TYPE) || !obj_attr(o, CKA_VALUE))
            return CKR_TEMPLATE_INCOMPLETE;
        if (ct != CKC_X_509)
            return CKR_ATTRIBUTE_VALUE_INVALID;
        err |= dflt_bool(o, CKA_TRUSTED, CK_FALSE);
        if (!obj_attr(o, CKA_CERTIFICATE_CATEGORY))
            err |= obj_set_ulong(o, CKA_CERTIFICATE_CATEGORY, 0);
        err |= dflt_empty(o, CKA_ID);
        err |= dflt_empty(o, CKA_SUBJECT);
        err |= dflt_empty(o, CKA_ISSUER);
        err |= dflt_empty(o, CKA_SERIAL_NUMBER);
        err |= dflt_empty(o, CKA_START_DATE);
        err |= dflt_empty(o, CKA_END_DATE);
    } else if (key) {
        if (!obj_attr(o, CKA_KEY_TYPE))
            return CKR_TEMPLATE_INCOMPLETE;
        err |= dflt_empty(o, CKA_ID);
        err |= dflt_empty(o, CKA_START_DATE);
        err |= dflt_empty(o, CKA_END_DATE);
        err |= dflt_bool(o, CKA_DERIVE, CK_FALSE);
        err |= obj_set_bool(o, CKA_LOCAL, gen ? CK_TRUE : CK_FALSE);
        err |= obj_set_ulong(o, CKA_KEY_GEN_MECHANISM, gen ? genmech : ST_UNAVAIL);
        if (o->cls == CKO_PUBLIC_KEY) {
            err |= dflt_empty(o, CKA_SUBJECT);
            err |= dflt_bool(o, CKA_ENCRYPT, CK_TRUE);
            err |= dflt_bool(o, CKA_VERIFY, CK_TRUE);
            err |= dflt_bool(o, CKA_VERIFY_RECOVER, CK_FALSE);
            err |= dflt_bool(o, CKA_WRAP, CK_TRUE);
            err |= dflt_bool(o, CKA_TRUSTED, CK_FALSE);
        } else {
            err |= dflt_bool(o, CKA_SENSITIVE, CK_TRUE);
            err |= dflt_bool(o, CKA_EXTRACTABLE, CK_FALSE);
            err |= dflt_bool(o, CKA_DECRYPT, CK_TRUE);
            err |= dflt_bool(o, CKA_SIGN, CK_TRUE);
            err |= dflt_bool(o, CKA_UNWRAP, CK_TRUE);
            err |= dflt_bool(o, CKA_WRAP_WITH_TRUSTED, CK_FALSE);
            if (o->cls == CKO_PRIVATE_KEY) {
                err |= dflt_empty(o, CKA_SUBJECT);
                err |= dflt_bool(o, CKA_SIGN_RECOVER, CK_FALSE);
                err |= dflt_bool(o, CKA_ALWAYS_AUTHENTICATE, CK_FALSE);
            } else {
                err |= dflt_bool(o, CKA_ENCRYPT, CK_TRUE);
                err |= dflt_bool(o, CKA_VERIFY, CK_TRUE);
                err |= dflt_bool(o, CKA_WRAP, CK_TRUE);
                err |= dflt_bool(o, CKA_TRUSTED, CK_FALSE);
            }
            CK_BBOOL sens = obj_bool(o, CKA_SENSITIVE, CK_TRUE);
            CK_BBOOL extr = obj_bool(o, CKA_EXTRACTABLE, CK_FALSE);
            err |= obj_set_bool(o, CKA_ALWAYS_SENSITIVE, gen ? sens : CK_FALSE);
            err |= obj_set_bool(o, CKA_NEVER_EXTRACTABLE, gen ? !extr : CK_FALSE);
        }
    } else {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (err)
        return CKR_HOST_MEMORY;

    obj_refresh_cache(o);
    if (o->cls == CKO_SECRET_KEY) {
        st_attr *v = obj_attr(o, CKA_VALUE);
        if (!v)
            return CKR_TEMPLATE_INCOMPLETE;
        CK_RV rv = check_secret_len(o->ktype, v->len);
        if (rv != CKR_OK)
            return o->ktype == CKK_AES || o->ktype == CKK_SM4 || o->ktype == CKK_GENERIC_SECRET
                       ? rv : CKR_ATTRIBUTE_VALUE_INVALID;
        CK_ULONG vl = obj_ulong(o, CKA_VALUE_LEN, v->len);
        if (vl != v->len)
            return CKR_TEMPLATE_INCONSISTENT;
        if (obj_set_ulong(o, CKA_VALUE_LEN, v->len))
            return CKR_HOST_MEMORY;
    }
    if (o->cls == CKO_PUBLIC_KEY || o->cls == CKO_PRIVATE_KEY) {
        CK_RV rv = key_validate_import(o, gen);
        if (rv != CKR_OK)
            return rv;
        obj_refresh_cache(o);
    }
    obj_mark_secrets(o);
    return CKR_OK;
}

int obj_match(const st_object *o, const CK_ATTRIBUTE *t, CK_ULONG n)
{
    for (CK_ULONG i = 0; i < n; i++) {
        st_attr *a = obj_attr(o, t[i].type);
        if (!a || a->len != t[i].ulValueLen)
            return 0;
        if (obj_is_sensitive_attr(o, t[i].type))
            return 0;
        if (a->len && (!t[i].pValue || memcmp(a->val, t[i].pValue, a->len)))
            return 0;
    }
    return 1;
}

/* C_GetAttributeValue rules (v2.40 base 5.7): every attribute is processed */
CK_RV obj_get_attrs(const st_object *o, CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_RV rv = CKR_OK;
    for (CK_ULONG i = 0; i < n; i++) {
        st_attr *a = obj_attr(o, t[i].type);
        if (obj_is_sensitive_attr(o, t[i].type)) {
            t[i].ulValueLen = ST_UNAVAIL;
            rv = CKR_ATTRIBUTE_SENSITIVE;
            continue;
        }
        if (!a) {
            t[i].ulValueLen = ST_UNAVAIL;
            int sealed = is_component(o->cls, t[i].type) || (o->is_private && t[i].type == CKA_VALUE);
            if (sealed && o->broken)
                return CKR_DEVICE_ERROR;     /* the sealed part failed authentication: unusable, say so */
            if (is_component(o->cls, t[i].type) && o->locked)
                rv = CKR_ATTRIBUTE_SENSITIVE;
            else if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
                rv = CKR_ATTRIBUTE_TYPE_INVALID;
            continue;
        }
        if (!t[i].pValue) {
            t[i].ulValueLen = a->len;
        } else if (t[i].ulValueLen < a->len) {
            t[i].ulValueLen = ST_UNAVAIL;
            if (rv == CKR_OK)
                rv = CKR_BUFFER_TOO_SMALL;
        } else {
            if (a->len)
                memcpy(t[i].pValue, a->val, a->len);
            t[i].ulValueLen = a->len;
        }
    }
    return rv;
}

/* C_SetAttributeValue / C_CopyObject rules (v2.40 base 4.4 table 10 footnotes 8, 11) */
CK_RV obj_check_set_attrs(const st_object *o, const CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_RV rv = tmpl_check(t, n);
    if (rv != CKR_OK)
        return rv;
    int modifiable = obj_bool(o, CKA_MODIFIABLE, CK_TRUE);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ATTRIBUTE_TYPE ty = t[i].type;
        if (!attr_allowed(o->cls, ty))
            return CKR_ATTRIBUTE_TYPE_INVALID;
        st_attr *cur = obj_attr(o, ty);
        int same = cur && cur->len == t[i].ulValueLen &&
                   (cur->len == 0 || memcmp(cur->val, t[i].pValue, cur->len) == 0);
        if (same && !obj_is_sensitive_attr(o, ty))
            continue;
        if (!modifiable)
            return CKR_ATTRIBUTE_READ_ONLY;
        switch (ty) {
        case CKA_LABEL: case CKA_ID: case CKA_SUBJECT: case CKA_START_DATE: case CKA_END_DATE:
        case CKA_APPLICATION: case CKA_OBJECT_ID:
        case CKA_ENCRYPT: case CKA_DECRYPT: case CKA_SIGN: case CKA_VERIFY: case CKA_WRAP:
        case CKA_UNWRAP: case CKA_DERIVE: case CKA_SIGN_RECOVER: case CKA_VERIFY_RECOVER:
            break;
        case CKA_VALUE:
            if (o->cls != CKO_DATA)
                return CKR_ATTRIBUTE_READ_ONLY;
            break;
        case CKA_SENSITIVE:
            if (!*(CK_BBOOL *)t[i].pValue)
                return CKR_ATTRIBUTE_READ_ONLY;        /* false -> true only */
            break;
        case CKA_EXTRACTABLE:
            if (*(CK_BBOOL *)t[i].pValue)
                return CKR_ATTRIBUTE_READ_ONLY;        /* true -> false only */
            break;
        default:
            return CKR_ATTRIBUTE_READ_ONLY;
        }
    }
    return CKR_OK;
}

/* ------------------------------------------------------------------ serialisation */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/*
 * Layout: u32 count, then per attribute u32 type-high, u32 type-low, u32 length, value.
 * CK_BBOOL and CK_ULONG values are written as stored (host ABI); the store is not meant
 * to travel between architectures.
 */
int obj_serialize(const st_object *o, int secret_part, unsigned char **out, size_t *outlen)
{
    unsigned char *buf = NULL, hdr[12];
    size_t len = 0, cap = 0;
    uint32_t cnt = 0;
    for (size_t i = 0; i < o->nattrs; i++)
        if (!!o->attrs[i].secret == !!secret_part)
            cnt++;
    put32(hdr, cnt);
    if (st_buf_append(&buf, &len, &cap, hdr, 4))
        goto fail;
    for (size_t i = 0; i < o->nattrs; i++) {
        const st_attr *a = &o->attrs[i];
        if (!!a->secret != !!secret_part)
            continue;
        uint64_t ty = a->type;
        put32(hdr, (uint32_t)(ty >> 32));
        put32(hdr + 4, (uint32_t)ty);
        put32(hdr + 8, (uint32_t)a->len);
        if (st_buf_append(&buf, &len, &cap, hdr, 12) || st_buf_append(&buf, &len, &cap, a->val, a->len))
            goto fail;
    }
    *out = buf;
    *outlen = len;
    return 0;
fail:
    OPENSSL_clear_free(buf, cap);
    return -1;
}

int obj_deserialize(st_object *o, const unsigned char *in, size_t len, int secret_part)
{
    if (len < 4)
        return -1;
    uint32_t cnt = get32(in);
    size_t p = 4;
    for (uint32_t i = 0; i < cnt; i++) {
        if (len - p < 12)
            return -1;
        uint64_t ty = ((uint64_t)get32(in + p) << 32) | get32(in + p + 4);
        uint32_t l = get32(in + p + 8);
        p += 12;
        if (l > len - p)
            return -1;
        if (obj_set(o, (CK_ATTRIBUTE_TYPE)ty, in + p, l))
            return -1;
        obj_attr(o, (CK_ATTRIBUTE_TYPE)ty)->secret = secret_part;
        p += l;
    }
    return p == len ? 0 : -1;
}

/* deep copy of the attributes and identity (no cached key, no encrypted blob) */
st_object *obj_clone(const st_object *src)
{
    st_object *o = obj_new();
    if (!o)
        return NULL;
    for (size_t i = 0; i < src->nattrs; i++) {
        if (obj_set(o, src->attrs[i].type, src->attrs[i].val, src->attrs[i].len)) {
            obj_free(o);
            return NULL;
        }
        o->attrs[o->nattrs - 1].secret = src->attrs[i].secret;
    }
    memcpy(o->uid, src->uid, ST_UID_LEN);
    o->slot = src->slot;
    o->owner = src->owner;
    o->locked = src->locked;
    o->broken = src->broken;
    memcpy(o->zdef, src->zdef, sizeof(o->zdef));
    o->zdef_ok = src->zdef_ok;
    if (src->enc_len) {
        o->enc = OPENSSL_memdup(src->enc, src->enc_len);
        if (!o->enc) {
            obj_free(o);
            return NULL;
        }
        o->enc_len = src->enc_len;
    }
    obj_refresh_cache(o);
    return o;
}
