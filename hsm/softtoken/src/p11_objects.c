/*
 * p11_objects.c - object management functions (PKCS#11 v2.40 base 5.7: C_CreateObject,
 * C_CopyObject, C_DestroyObject, C_GetObjectSize, C_GetAttributeValue,
 * C_SetAttributeValue, C_FindObjectsInit/FindObjects/FindObjectsFinal) and random number
 * generation (5.15: C_SeedRandom, C_GenerateRandom from OpenSSL's RAND).
 */
#include "st.h"
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* give o a handle; token objects are written to disk first (g_st.lock held) */
CK_RV st_register_object(st_session *s, st_object *o)
{
    st_slot *sl = &g_st.slots[s->slot];
    o->slot = s->slot;
    obj_refresh_cache(o);
    if (o->is_private && sl->login != CKU_USER)
        return CKR_USER_NOT_LOGGED_IN;
    if (o->is_token) {
        if (!session_is_rw(s))
            return CKR_SESSION_READ_ONLY;
        o->owner = 0;
        if (st_random(o->uid, ST_UID_LEN))
            return CKR_FUNCTION_FAILED;
        CK_RV rv = store_write_object(sl, o);
        if (rv != CKR_OK)
            return rv;
    } else {
        o->owner = s->handle;
        if (st_random(o->uid, ST_UID_LEN))
            return CKR_FUNCTION_FAILED;
    }
    return objs_add(o);
}

CK_RV C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                     CK_OBJECT_HANDLE_PTR phObject)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_object *o = NULL;
    CK_ULONG cls;
    int found;
    if (!phObject || (ulCount && !pTemplate)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = tmpl_check(pTemplate, ulCount)) != CKR_OK)
        goto out;
    if ((rv = tmpl_get_ulong(pTemplate, ulCount, CKA_CLASS, &cls, &found)) != CKR_OK)
        goto out;
    if (!found) {
        rv = CKR_TEMPLATE_INCOMPLETE;
        goto out;
    }
    if (cls != CKO_DATA && cls != CKO_CERTIFICATE && cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY &&
        cls != CKO_SECRET_KEY) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    if (!(o = obj_new())) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    o->cls = cls;
    if ((rv = obj_apply_template(o, pTemplate, ulCount, ST_ORIGIN_CREATE)) != CKR_OK)
        goto out;
    if ((rv = obj_finish(o, ST_ORIGIN_CREATE, 0)) != CKR_OK)
        goto out;
    pthread_mutex_lock(&g_st.lock);
    rv = st_register_object(s, o);
    if (rv == CKR_OK) {
        *phObject = o->handle;
        o = NULL;
    }
    pthread_mutex_unlock(&g_st.lock);
out:
    obj_free(o);
    session_put(s);
    return rv;
}

CK_RV C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                   CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    if (!phNewObject || (ulCount && !pTemplate)) {
        session_put(s);
        return CKR_ARGUMENTS_BAD;
    }
    st_object *src, *o = NULL;
    pthread_mutex_lock(&g_st.lock);
    if ((rv = obj_lookup(s, hObject, &src)) != CKR_OK)
        goto out;
    if (!obj_bool(src, CKA_COPYABLE, CK_TRUE)) {
        rv = CKR_ACTION_PROHIBITED;
        goto out;
    }
    if (src->locked || src->broken) {
        rv = src->broken ? CKR_DEVICE_ERROR : CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if ((rv = tmpl_check(pTemplate, ulCount)) != CKR_OK)
        goto out;
    if (!(o = obj_clone(src))) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    OPENSSL_free(o->enc);
    o->enc = NULL;
    o->enc_len = 0;
    for (CK_ULONG i = 0; i < ulCount; i++) {
        CK_ATTRIBUTE_TYPE t = pTemplate[i].type;
        if (t == CKA_TOKEN || t == CKA_PRIVATE || t == CKA_MODIFIABLE || t == CKA_DESTROYABLE ||
            (t == CKA_COPYABLE && !*(CK_BBOOL *)pTemplate[i].pValue)) {
            if (obj_set(o, t, pTemplate[i].pValue, pTemplate[i].ulValueLen)) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
        } else {
            if ((rv = obj_check_set_attrs(o, &pTemplate[i], 1)) != CKR_OK)
                goto out;
            if (obj_set(o, t, pTemplate[i].pValue, pTemplate[i].ulValueLen)) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
        }
    }
    obj_refresh_cache(o);
    obj_mark_secrets(o);
    rv = st_register_object(s, o);
    if (rv == CKR_OK) {
        *phNewObject = o->handle;
        o = NULL;
    }
out:
    pthread_mutex_unlock(&g_st.lock);
    obj_free(o);
    session_put(s);
    return rv;
}

CK_RV C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_object *o;
    pthread_mutex_lock(&g_st.lock);
    if ((rv = obj_lookup(s, hObject, &o)) == CKR_OK) {
        if (!obj_bool(o, CKA_DESTROYABLE, CK_TRUE))
            rv = CKR_ACTION_PROHIBITED;
        else if (o->is_token && !session_is_rw(s))
            rv = CKR_SESSION_READ_ONLY;
        else if (o->is_token)
            rv = store_delete_object(&g_st.slots[s->slot], o);
        if (rv == CKR_OK)
            objs_remove(o);
    }
    pthread_mutex_unlock(&g_st.lock);
    session_put(s);
    return rv;
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_object *o;
    pthread_mutex_lock(&g_st.lock);
    if (!pulSize)
        rv = CKR_ARGUMENTS_BAD;
    else if ((rv = obj_lookup(s, hObject, &o)) == CKR_OK) {
        CK_ULONG n = 0;
        for (size_t i = 0; i < o->nattrs; i++)
            n += o->attrs[i].len + 16;
        *pulSize = n;
    }
    pthread_mutex_unlock(&g_st.lock);
    session_put(s);
    return rv;
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                          CK_ULONG ulCount)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_object *o;
    pthread_mutex_lock(&g_st.lock);
    if (ulCount && !pTemplate)
        rv = CKR_ARGUMENTS_BAD;
    else if ((rv = obj_lookup(s, hObject, &o)) == CKR_OK)
        rv = obj_get_attrs(o, pTemplate, ulCount);
    pthread_mutex_unlock(&g_st.lock);
    session_put(s);
    return rv;
}

CK_RV C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                          CK_ULONG ulCount)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_object *o, *n = NULL;
    pthread_mutex_lock(&g_st.lock);
    if (ulCount && !pTemplate) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = obj_lookup(s, hObject, &o)) != CKR_OK)
        goto out;
    if (o->is_token && !session_is_rw(s)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if ((rv = obj_check_set_attrs(o, pTemplate, ulCount)) != CKR_OK)
        goto out;
    if (o->is_token && (o->locked || o->broken)) {
        rv = o->broken ? CKR_DEVICE_ERROR : CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if (!(n = obj_clone(o))) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    for (CK_ULONG i = 0; i < ulCount; i++) {
        if (obj_set(n, pTemplate[i].type, pTemplate[i].pValue, pTemplate[i].ulValueLen)) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    obj_refresh_cache(n);
    obj_mark_secrets(n);
    n->is_token = o->is_token;
    if (o->is_token && (rv = store_write_object(&g_st.slots[s->slot], n)) != CKR_OK)
        goto out;
    n->handle = o->handle;
    n->pkey = o->pkey;
    o->pkey = NULL;
    n->sm2 = o->sm2;
    o->sm2 = NULL;
    g_st.objs[o->handle - 1] = n;
    obj_free(o);
    n = NULL;
out:
    pthread_mutex_unlock(&g_st.lock);
    obj_free(n);
    session_put(s);
    return rv;
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    if (ulCount && !pTemplate) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (s->find_active) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        for (CK_ULONG i = 0; i < ulCount; i++)
            if (pTemplate[i].ulValueLen && !pTemplate[i].pValue)
                rv = CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (rv == CKR_OK) {
        pthread_mutex_lock(&g_st.lock);
        store_sync(&g_st.slots[s->slot]);
        free(s->found);
        s->found = malloc((g_st.nobjs + 1) * sizeof(CK_OBJECT_HANDLE));
        s->nfound = s->findpos = 0;
        if (!s->found) {
            rv = CKR_HOST_MEMORY;
        } else {
            for (size_t i = 0; i < g_st.nobjs; i++) {
                st_object *o = g_st.objs[i];
                if (o && obj_visible(o, s) && obj_match(o, pTemplate, ulCount))
                    s->found[s->nfound++] = o->handle;
            }
            s->find_active = 1;
        }
        pthread_mutex_unlock(&g_st.lock);
    }
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
                    CK_ULONG_PTR pulObjectCount)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    if (!pulObjectCount || (!phObject && ulMaxObjectCount)) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (!s->find_active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
    } else {
        CK_ULONG n = 0;
        while (n < ulMaxObjectCount && s->findpos < s->nfound)
            phObject[n++] = s->found[s->findpos++];
        *pulObjectCount = n;
    }
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&s->mu);
    if (!s->find_active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
    } else {
        s->find_active = 0;
        free(s->found);
        s->found = NULL;
        s->nfound = s->findpos = 0;
    }
    pthread_mutex_unlock(&s->mu);
    session_put(s);
    return rv;
}

CK_RV C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    if (!pSeed && ulSeedLen)
        rv = CKR_ARGUMENTS_BAD;
    else if (ulSeedLen)
        RAND_seed(pSeed, ulSeedLen > 1u << 20 ? 1 << 20 : (int)ulSeedLen);   /* mixed in, never replaces */
    session_put(s);
    return rv;
}

CK_RV C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData, CK_ULONG ulRandomLen)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    if (!pRandomData && ulRandomLen)
        rv = CKR_ARGUMENTS_BAD;
    else {
        CK_ULONG done = 0;
        while (rv == CKR_OK && done < ulRandomLen) {
            CK_ULONG n = ulRandomLen - done > (1u << 20) ? (1u << 20) : ulRandomLen - done;
            if (st_random(pRandomData + done, n))
                rv = CKR_FUNCTION_FAILED;
            done += n;
        }
    }
    session_put(s);
    return rv;
}
