/*
 * p11_main.c - library, slot and token, session and login functions
 * (PKCS#11 v2.40 base 5.4 general purpose, 5.5 slot and token management, 5.6 session
 * management) and the CK_FUNCTION_LIST.
 *
 * Thread safety does not depend on C_Initialize's arguments: CKF_OS_LOCKING_OK is
 * accepted and ignored, and pthread mutexes are always used (python-pkcs11 passes NULL).
 * PIN retry counters live in token.meta so they survive processes; after
 * max_pin_failures wrong PINs the role is locked (CKR_PIN_LOCKED); an SO C_InitPIN
 * unlocks the user.
 */
#include "st.h"
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

st_global g_st = { .lock = PTHREAD_MUTEX_INITIALIZER };

extern CK_FUNCTION_LIST st_function_list;

#define NOBODY ((CK_USER_TYPE)-1)

/* ------------------------------------------------------------------ tables */

CK_RV objs_add(st_object *o)
{
    if (st_grow((void **)&g_st.objs, &g_st.capobjs, g_st.nobjs + 1, sizeof(st_object *)))
        return CKR_HOST_MEMORY;
    g_st.objs[g_st.nobjs++] = o;
    o->handle = g_st.nobjs;
    return CKR_OK;
}

void objs_remove(st_object *o)
{
    if (o->handle && o->handle <= g_st.nobjs && g_st.objs[o->handle - 1] == o)
        g_st.objs[o->handle - 1] = NULL;
    obj_free(o);
}

st_object *objs_get(CK_OBJECT_HANDLE h)
{
    if (h == 0 || h > g_st.nobjs)
        return NULL;
    return g_st.objs[h - 1];
}

int slot_logged_in_user(const st_slot *sl)
{
    return sl->login == CKU_USER;
}

int session_is_rw(const st_session *s)
{
    return (s->flags & CKF_RW_SESSION) != 0;
}

int obj_visible(const st_object *o, const st_session *s)
{
    if (o->slot != s->slot)
        return 0;
    if (!o->is_token && o->owner == 0)
        return 0;
    if (o->is_private && g_st.slots[s->slot].login != CKU_USER)
        return 0;
    return 1;
}

CK_RV obj_lookup(st_session *s, CK_OBJECT_HANDLE h, st_object **out)
{
    st_object *o = objs_get(h);
    if (!o || !obj_visible(o, s))
        return CKR_OBJECT_HANDLE_INVALID;
    *out = o;
    return CKR_OK;
}

void op_reset(st_op *op)
{
    EVP_PKEY_free(op->pkey);
    sm2p256_key_free(op->sm2);
    EVP_MD_CTX_free(op->md);
    EVP_CIPHER_CTX_free(op->cctx);
    EVP_MAC_CTX_free(op->mac);
    if (op->buf)
        OPENSSL_clear_free(op->buf, op->bufcap);
    OPENSSL_cleanse(op, sizeof(*op));
}

void session_drop_caches(st_session *s)
{
    EVP_PKEY_CTX_free(s->sign_pctx);
    EVP_PKEY_CTX_free(s->verify_pctx);
    EVP_PKEY_free(s->sign_pctx_key);
    EVP_PKEY_free(s->verify_pctx_key);
    s->sign_pctx = s->verify_pctx = NULL;
    s->sign_pctx_key = s->verify_pctx_key = NULL;
}

static void session_free(st_session *s)
{
    op_reset(&s->sign);
    op_reset(&s->verify);
    op_reset(&s->enc);
    op_reset(&s->dec);
    op_reset(&s->digest);
    session_drop_caches(s);
    free(s->found);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

st_session *session_get(CK_SESSION_HANDLE h, CK_RV *rv)
{
    st_session *s = NULL;
    pthread_mutex_lock(&g_st.lock);
    if (!g_st.initialized) {
        *rv = CKR_CRYPTOKI_NOT_INITIALIZED;
    } else if (h == 0 || h > g_st.nsessions || !(s = g_st.sessions[h - 1]) || s->closed) {
        s = NULL;
        *rv = CKR_SESSION_HANDLE_INVALID;
    } else {
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
        *rv = CKR_OK;
    }
    pthread_mutex_unlock(&g_st.lock);
    return s;
}

void session_put(st_session *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        session_free(s);
}

/* caller holds g_st.lock; the session leaves the table and its session objects die */
static void session_close_locked(st_session *s)
{
    s->closed = 1;
    g_st.sessions[s->handle - 1] = NULL;
    for (size_t i = 0; i < g_st.nobjs; i++) {
        st_object *o = g_st.objs[i];
        if (o && !o->is_token && o->owner == s->handle)
            objs_remove(o);
    }
}

static unsigned slot_session_count(CK_SLOT_ID id, int rw_only)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_st.nsessions; i++) {
        st_session *s = g_st.sessions[i];
        if (s && !s->closed && s->slot == id && (!rw_only || session_is_rw(s)))
            n++;
    }
    return n;
}

/* caller holds g_st.lock */
static void slot_logout_locked(st_slot *sl)
{
    sl->login = NOBODY;
    sl->mk_ok = 0;
    OPENSSL_cleanse(sl->mk, sizeof(sl->mk));
    for (size_t i = 0; i < g_st.nobjs; i++) {
        st_object *o = g_st.objs[i];
        if (o && o->is_token && o->slot == sl->id)
            obj_drop_secrets(o);
    }
}

/* drop per-session key caches of a slot (they hold private keys); lock not held */
static void slot_drop_session_caches(CK_SLOT_ID id)
{
    st_session **list = NULL;
    size_t n = 0;
    pthread_mutex_lock(&g_st.lock);
    list = calloc(g_st.nsessions + 1, sizeof(*list));
    for (size_t i = 0; list && i < g_st.nsessions; i++) {
        st_session *s = g_st.sessions[i];
        if (s && !s->closed && s->slot == id) {
            __atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
            list[n++] = s;
        }
    }
    pthread_mutex_unlock(&g_st.lock);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&list[i]->mu);
        session_drop_caches(list[i]);
        pthread_mutex_unlock(&list[i]->mu);
        session_put(list[i]);
    }
    free(list);
}

static CK_RV slot_check(CK_SLOT_ID id)
{
    if (!g_st.initialized)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (id >= g_st.nslots)
        return CKR_SLOT_ID_INVALID;
    return CKR_OK;
}

/* ------------------------------------------------------------------ general */

CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
    if (pInitArgs) {
        CK_C_INITIALIZE_ARGS *a = pInitArgs;
        int nfn = !!a->CreateMutex + !!a->DestroyMutex + !!a->LockMutex + !!a->UnlockMutex;
        if (a->pReserved || (nfn != 0 && nfn != 4))
            return CKR_ARGUMENTS_BAD;
        /* application mutexes are not needed: we always use pthreads */
    }
    pthread_mutex_lock(&g_st.lock);
    if (g_st.initialized && g_st.pid == getpid()) {
        pthread_mutex_unlock(&g_st.lock);
        return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    }
    CK_RV rv = CKR_GENERAL_ERROR;
    memset(g_st.slots, 0, sizeof(g_st.slots));
    g_st.sessions = NULL;
    g_st.nsessions = g_st.capsessions = 0;
    g_st.objs = NULL;
    g_st.nobjs = g_st.capobjs = 0;
    if (st_config_load(&g_st.cfg))
        goto out;
    g_st.sm3 = EVP_MD_fetch(NULL, "SM3", NULL);
    g_st.sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    g_st.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    g_st.sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
    g_st.sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
    g_st.hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!g_st.sm3 || !g_st.sha1 || !g_st.sha256 || !g_st.sha384 || !g_st.sha512 || !g_st.hmac)
        goto out;
    {
        const char *impl = getenv("RACENTRE_SOFTTOKEN_SM2_IMPL");
        g_st.sm2_openssl = impl && !strcmp(impl, "openssl");
    }
    if (!g_st.sm2_openssl && sm2p256_init())      /* generator table, built once per process */
        goto out;
    g_st.nslots = g_st.cfg.slots;
    for (unsigned i = 0; i < g_st.nslots; i++) {
        st_slot *sl = &g_st.slots[i];
        sl->id = i;
        sl->login = NOBODY;
        snprintf(sl->path, sizeof(sl->path), "%s/slot%u", g_st.cfg.dir, i);
        if (store_init_slot(sl)) {
            st_log("cannot create token directory %s", sl->path);
            rv = CKR_DEVICE_ERROR;
            goto out;
        }
    }
    g_st.pid = getpid();
    g_st.initialized = 1;
    rv = CKR_OK;
out:
    pthread_mutex_unlock(&g_st.lock);
    return rv;
}

CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
    if (pReserved)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_st.lock);
    if (!g_st.initialized) {
        pthread_mutex_unlock(&g_st.lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    g_st.initialized = 0;
    for (size_t i = 0; i < g_st.nsessions; i++) {
        st_session *s = g_st.sessions[i];
        if (s) {
            session_close_locked(s);
            session_put(s);
        }
    }
    for (size_t i = 0; i < g_st.nobjs; i++)
        if (g_st.objs[i])
            objs_remove(g_st.objs[i]);
    for (unsigned i = 0; i < g_st.nslots; i++)
        OPENSSL_cleanse(g_st.slots[i].mk, ST_MK_LEN);
    free(g_st.sessions);
    free(g_st.objs);
    g_st.sessions = NULL;
    g_st.objs = NULL;
    g_st.nsessions = g_st.capsessions = g_st.nobjs = g_st.capobjs = 0;
    EVP_MD_free(g_st.sm3);
    EVP_MD_free(g_st.sha1);
    EVP_MD_free(g_st.sha256);
    EVP_MD_free(g_st.sha384);
    EVP_MD_free(g_st.sha512);
    EVP_MAC_free(g_st.hmac);
    g_st.sm3 = g_st.sha1 = g_st.sha256 = g_st.sha384 = g_st.sha512 = NULL;
    g_st.hmac = NULL;
    pthread_mutex_unlock(&g_st.lock);
    return CKR_OK;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo)
{
    if (!g_st.initialized)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pInfo)
        return CKR_ARGUMENTS_BAD;
    memset(pInfo, 0, sizeof(*pInfo));
    pInfo->cryptokiVersion.major = 2;
    pInfo->cryptokiVersion.minor = 40;
    st_padcpy(pInfo->manufacturerID, "RA Centre", 32);
    st_padcpy(pInfo->libraryDescription, "RA Centre SM2 SoftToken", 32);
    pInfo->libraryVersion.major = 1;
    pInfo->libraryVersion.minor = 0;
    return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    if (!ppFunctionList)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &st_function_list;
    return CKR_OK;
}

/* ------------------------------------------------------------------ slots and tokens */

CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
    (void)tokenPresent;
    if (!g_st.initialized)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pulCount)
        return CKR_ARGUMENTS_BAD;
    if (pSlotList) {
        if (*pulCount < g_st.nslots) {
            *pulCount = g_st.nslots;
            return CKR_BUFFER_TOO_SMALL;
        }
        for (unsigned i = 0; i < g_st.nslots; i++)
            pSlotList[i] = i;
    }
    *pulCount = g_st.nslots;
    return CKR_OK;
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
    CK_RV rv = slot_check(slotID);
    if (rv != CKR_OK)
        return rv;
    if (!pInfo)
        return CKR_ARGUMENTS_BAD;
    char d[64];
    snprintf(d, sizeof(d), "RA Centre SoftToken slot %lu", (unsigned long)slotID);
    memset(pInfo, 0, sizeof(*pInfo));
    st_padcpy(pInfo->slotDescription, d, 64);
    st_padcpy(pInfo->manufacturerID, "RA Centre", 32);
    pInfo->flags = CKF_TOKEN_PRESENT;
    pInfo->hardwareVersion.major = 1;
    pInfo->firmwareVersion.major = 1;
    return CKR_OK;
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
    CK_RV rv = slot_check(slotID);
    if (rv != CKR_OK)
        return rv;
    if (!pInfo)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_st.lock);
    st_slot *sl = &g_st.slots[slotID];
    store_sync(sl);
    st_meta *m = &sl->meta;
    if (m->corrupt) {
        pthread_mutex_unlock(&g_st.lock);
        return CKR_TOKEN_NOT_RECOGNIZED;
    }
    unsigned max = g_st.cfg.max_pin_failures;
    memset(pInfo, 0, sizeof(*pInfo));
    if (m->present) {
        memcpy(pInfo->label, m->label, 32);
        memcpy(pInfo->serialNumber, m->serial, 16);
    } else {
        st_padcpy(pInfo->label, "", 32);
        st_padcpy(pInfo->serialNumber, "", 16);
    }
    st_padcpy(pInfo->manufacturerID, "RA Centre", 32);
    st_padcpy(pInfo->model, "SoftToken-SM2", 16);
    CK_FLAGS f = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_RESTORE_KEY_NOT_NEEDED;
    if (m->present) {
        f |= CKF_TOKEN_INITIALIZED;
        if (m->user_pin_set)
            f |= CKF_USER_PIN_INITIALIZED;
        if (m->user_fail > 0)
            f |= CKF_USER_PIN_COUNT_LOW;
        if (m->user_fail + 1 == max)
            f |= CKF_USER_PIN_FINAL_TRY;
        if (m->user_fail >= max)
            f |= CKF_USER_PIN_LOCKED;
        if (m->so_fail > 0)
            f |= CKF_SO_PIN_COUNT_LOW;
        if (m->so_fail + 1 == max)
            f |= CKF_SO_PIN_FINAL_TRY;
        if (m->so_fail >= max)
            f |= CKF_SO_PIN_LOCKED;
    }
    pInfo->flags = f;
    pInfo->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    pInfo->ulSessionCount = slot_session_count(slotID, 0);
    pInfo->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    pInfo->ulRwSessionCount = slot_session_count(slotID, 1);
    pInfo->ulMaxPinLen = ST_MAX_PIN;
    pInfo->ulMinPinLen = ST_MIN_PIN;
    pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->hardwareVersion.major = 1;
    pInfo->firmwareVersion.major = 1;
    st_padcpy(pInfo->utcTime, "", 16);
    pthread_mutex_unlock(&g_st.lock);
    return CKR_OK;
}

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount)
{
    CK_RV rv = slot_check(slotID);
    if (rv != CKR_OK)
        return rv;
    if (!pulCount)
        return CKR_ARGUMENTS_BAD;
    size_t n;
    const st_mech *t = mech_table(&n);
    if (pMechanismList) {
        if (*pulCount < n) {
            *pulCount = n;
            return CKR_BUFFER_TOO_SMALL;
        }
        for (size_t i = 0; i < n; i++)
            pMechanismList[i] = t[i].type;
    }
    *pulCount = n;
    return CKR_OK;
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
    CK_RV rv = slot_check(slotID);
    if (rv != CKR_OK)
        return rv;
    if (!pInfo)
        return CKR_ARGUMENTS_BAD;
    const st_mech *m = mech_find(type);
    if (!m)
        return CKR_MECHANISM_INVALID;
    pInfo->ulMinKeySize = m->min;
    pInfo->ulMaxKeySize = m->max;
    pInfo->flags = m->flags;
    return CKR_OK;
}

static CK_RV pin_len_ok(CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    if (!pin && len)
        return CKR_ARGUMENTS_BAD;
    if (!pin)
        return CKR_PIN_LEN_RANGE;   /* no protected authentication path */
    if (len < ST_MIN_PIN || len > ST_MAX_PIN)
        return CKR_PIN_LEN_RANGE;
    return CKR_OK;
}

/* record a PIN failure or success in token.meta; returns the rv for the caller */
static CK_RV pin_result(st_slot *sl, int role_so, int ok)
{
    int fd = store_lock(sl);
    if (fd < 0)
        return CKR_DEVICE_ERROR;
    st_meta m;
    CK_RV rv = ok ? CKR_OK : CKR_PIN_INCORRECT;
    if (store_read_meta(sl, &m) < 0 || !m.present) {
        store_unlock(fd);
        return CKR_DEVICE_ERROR;
    }
    uint32_t *cnt = role_so ? &m.so_fail : &m.user_fail;
    uint32_t before = *cnt;
    if (ok)
        *cnt = 0;
    else if (*cnt < 0xffff)
        (*cnt)++;
    if (!ok && *cnt >= g_st.cfg.max_pin_failures)
        rv = CKR_PIN_LOCKED;
    if (*cnt != before && store_write_meta(sl, &m))
        rv = CKR_DEVICE_ERROR;
    store_unlock(fd);
    pthread_mutex_lock(&g_st.lock);
    sl->meta.so_fail = m.so_fail;
    sl->meta.user_fail = m.user_fail;
    pthread_mutex_unlock(&g_st.lock);
    return rv;
}

/* check a PIN against the token, counting failures. mk receives the master key. */
static CK_RV pin_verify(st_slot *sl, int role_so, CK_UTF8CHAR_PTR pin, CK_ULONG len, unsigned char *mk)
{
    st_meta m;
    pthread_mutex_lock(&g_st.lock);
    store_sync(sl);
    m = sl->meta;
    pthread_mutex_unlock(&g_st.lock);
    if (m.corrupt)
        return CKR_DEVICE_ERROR;
    if (!m.present)
        return CKR_TOKEN_NOT_RECOGNIZED;
    if (!role_so && !m.user_pin_set)
        return CKR_USER_PIN_NOT_INITIALIZED;
    if ((role_so ? m.so_fail : m.user_fail) >= g_st.cfg.max_pin_failures)
        return CKR_PIN_LOCKED;
    if (!pin || len < 1 || len > ST_MAX_PIN)
        return pin_result(sl, role_so, 0);
    int r = role_so ? pin_unwrap_mk(mk, m.uid, 0, pin, len, m.so_iter, m.so_salt, m.so_wrap)
                    : pin_unwrap_mk(mk, m.uid, 1, pin, len, m.user_iter, m.user_salt, m.user_wrap);
    if (r < 0)
        return CKR_FUNCTION_FAILED;
    if (r > 0)
        return pin_result(sl, role_so, 0);
    if ((role_so ? m.so_fail : m.user_fail) > 0)
        return pin_result(sl, role_so, 1);
    return CKR_OK;
}

CK_RV C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
    CK_RV rv = slot_check(slotID);
    if (rv != CKR_OK)
        return rv;
    if (!pLabel)
        return CKR_ARGUMENTS_BAD;
    if ((rv = pin_len_ok(pPin, ulPinLen)) != CKR_OK)
        return rv;
    st_slot *sl = &g_st.slots[slotID];
    pthread_mutex_lock(&g_st.lock);
    unsigned open = slot_session_count(slotID, 0);
    pthread_mutex_unlock(&g_st.lock);
    if (open)
        return CKR_SESSION_EXISTS;

    unsigned char mk[ST_MK_LEN];
    int fd = store_lock(sl);
    if (fd < 0)
        return CKR_DEVICE_ERROR;
    st_meta old, m;
    int mr = store_read_meta(sl, &old);
    if (mr == 0 && old.present) {
        if (old.so_fail >= g_st.cfg.max_pin_failures) {
            store_unlock(fd);
            return CKR_PIN_LOCKED;
        }
        int r = pin_unwrap_mk(mk, old.uid, 0, pPin, ulPinLen, old.so_iter, old.so_salt, old.so_wrap);
        OPENSSL_cleanse(mk, sizeof(mk));
        if (r != 0) {
            store_unlock(fd);
            return r < 0 ? CKR_FUNCTION_FAILED : pin_result(sl, 1, 0);
        }
    }
    /* a corrupt token.meta may be overwritten: that is what re-initialisation is for */
    memset(&m, 0, sizeof(m));
    memcpy(m.label, pLabel, 32);
    if (old.present) {
        memcpy(m.serial, old.serial, 16);
    } else {
        unsigned char r[8];
        char hx[17];
        if (st_random(r, sizeof(r))) {
            store_unlock(fd);
            return CKR_FUNCTION_FAILED;
        }
        st_hex(r, sizeof(r), hx);
        memcpy(m.serial, hx, 16);
    }
    m.so_iter = m.user_iter = g_st.cfg.pbkdf2_iterations;
    if (st_random(m.uid, ST_UID_LEN) || st_private_random(mk, sizeof(mk)) ||
        pin_wrap_mk(mk, m.uid, 0, pPin, ulPinLen, m.so_iter, m.so_salt, m.so_wrap)) {
        OPENSSL_cleanse(mk, sizeof(mk));
        store_unlock(fd);
        return CKR_FUNCTION_FAILED;
    }
    OPENSSL_cleanse(mk, sizeof(mk));
    m.present = 1;
    rv = CKR_OK;
    if (store_wipe_objects(sl) != CKR_OK || store_write_meta(sl, &m))
        rv = CKR_DEVICE_ERROR;
    store_unlock(fd);

    pthread_mutex_lock(&g_st.lock);
    for (size_t i = 0; i < g_st.nobjs; i++) {
        st_object *o = g_st.objs[i];
        if (o && o->slot == slotID)
            objs_remove(o);
    }
    slot_logout_locked(sl);
    sl->meta = m;
    sl->gen_valid = 0;
    store_sync(sl);
    pthread_mutex_unlock(&g_st.lock);
    return rv;
}

CK_RV C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_slot *sl = &g_st.slots[s->slot];
    unsigned char mk[ST_MK_LEN];
    pthread_mutex_lock(&g_st.lock);
    int so = sl->login == CKU_SO && sl->mk_ok;
    if (so)
        memcpy(mk, sl->mk, sizeof(mk));
    pthread_mutex_unlock(&g_st.lock);
    if (!so)
        rv = CKR_USER_NOT_LOGGED_IN;
    else if (!session_is_rw(s))
        rv = CKR_SESSION_READ_ONLY;
    else if ((rv = pin_len_ok(pPin, ulPinLen)) == CKR_OK) {
        int fd = store_lock(sl);
        st_meta m;
        if (fd < 0 || store_read_meta(sl, &m) < 0 || !m.present) {
            rv = CKR_DEVICE_ERROR;
        } else {
            m.user_iter = g_st.cfg.pbkdf2_iterations;
            if (pin_wrap_mk(mk, m.uid, 1, pPin, ulPinLen, m.user_iter, m.user_salt, m.user_wrap)) {
                rv = CKR_FUNCTION_FAILED;
            } else {
                m.user_pin_set = 1;
                m.user_fail = 0;
                if (store_write_meta(sl, &m))
                    rv = CKR_DEVICE_ERROR;
                else {
                    pthread_mutex_lock(&g_st.lock);
                    sl->meta = m;
                    pthread_mutex_unlock(&g_st.lock);
                }
            }
        }
        store_unlock(fd);
    }
    OPENSSL_cleanse(mk, sizeof(mk));
    session_put(s);
    return rv;
}

CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin,
               CK_ULONG ulNewLen)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_slot *sl = &g_st.slots[s->slot];
    unsigned char mk[ST_MK_LEN];
    pthread_mutex_lock(&g_st.lock);
    int role_so = sl->login == CKU_SO;
    pthread_mutex_unlock(&g_st.lock);
    if (!session_is_rw(s))
        rv = CKR_SESSION_READ_ONLY;
    else if ((rv = pin_len_ok(pNewPin, ulNewLen)) != CKR_OK)
        ;
    else if ((rv = pin_verify(sl, role_so, pOldPin, ulOldLen, mk)) == CKR_OK) {
        int fd = store_lock(sl);
        st_meta m;
        if (fd < 0 || store_read_meta(sl, &m) < 0 || !m.present) {
            rv = CKR_DEVICE_ERROR;
        } else {
            int bad;
            if (role_so) {
                m.so_iter = g_st.cfg.pbkdf2_iterations;
                bad = pin_wrap_mk(mk, m.uid, 0, pNewPin, ulNewLen, m.so_iter, m.so_salt, m.so_wrap);
            } else {
                m.user_iter = g_st.cfg.pbkdf2_iterations;
                bad = pin_wrap_mk(mk, m.uid, 1, pNewPin, ulNewLen, m.user_iter, m.user_salt, m.user_wrap);
            }
            if (bad)
                rv = CKR_FUNCTION_FAILED;
            else if (store_write_meta(sl, &m))
                rv = CKR_DEVICE_ERROR;
            else {
                pthread_mutex_lock(&g_st.lock);
                sl->meta = m;
                pthread_mutex_unlock(&g_st.lock);
            }
        }
        store_unlock(fd);
    }
    OPENSSL_cleanse(mk, sizeof(mk));
    session_put(s);
    return rv;
}

/* ------------------------------------------------------------------ sessions */

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                    CK_SESSION_HANDLE_PTR phSession)
{
    (void)pApplication;
    (void)Notify;
    CK_RV rv = slot_check(slotID);
    if (rv != CKR_OK)
        return rv;
    if (!phSession)
        return CKR_ARGUMENTS_BAD;
    if (!(flags & CKF_SERIAL_SESSION))
        return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    st_session *s = calloc(1, sizeof(*s));
    if (!s)
        return CKR_HOST_MEMORY;
    pthread_mutex_init(&s->mu, NULL);
    s->slot = slotID;
    s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
    s->refs = 1;
    pthread_mutex_lock(&g_st.lock);
    st_slot *sl = &g_st.slots[slotID];
    store_sync(sl);
    if (sl->meta.corrupt || !sl->meta.present)
        rv = CKR_TOKEN_NOT_RECOGNIZED;
    else if (sl->login == CKU_SO && !(flags & CKF_RW_SESSION))
        rv = CKR_SESSION_READ_WRITE_SO_EXISTS;
    else if (st_grow((void **)&g_st.sessions, &g_st.capsessions, g_st.nsessions + 1, sizeof(st_session *)))
        rv = CKR_HOST_MEMORY;
    if (rv == CKR_OK) {
        g_st.sessions[g_st.nsessions++] = s;
        s->handle = g_st.nsessions;
        *phSession = s->handle;
    }
    pthread_mutex_unlock(&g_st.lock);
    if (rv != CKR_OK)
        session_free(s);
    return rv;
}

static void close_one(st_session *s)
{
    /* lock held by caller; drops the table's reference */
    CK_SLOT_ID slot = s->slot;
    session_close_locked(s);
    if (slot_session_count(slot, 0) == 0)
        slot_logout_locked(&g_st.slots[slot]);
    session_put(s);
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&g_st.lock);
    if (!s->closed)
        close_one(s);
    pthread_mutex_unlock(&g_st.lock);
    session_put(s);
    return CKR_OK;
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
{
    CK_RV rv = slot_check(slotID);
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&g_st.lock);
    for (size_t i = 0; i < g_st.nsessions; i++) {
        st_session *s = g_st.sessions[i];
        if (s && !s->closed && s->slot == slotID)
            close_one(s);
    }
    slot_logout_locked(&g_st.slots[slotID]);
    pthread_mutex_unlock(&g_st.lock);
    return CKR_OK;
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    if (!pInfo) {
        session_put(s);
        return CKR_ARGUMENTS_BAD;
    }
    pthread_mutex_lock(&g_st.lock);
    CK_USER_TYPE who = g_st.slots[s->slot].login;
    pthread_mutex_unlock(&g_st.lock);
    int rw = session_is_rw(s);
    pInfo->slotID = s->slot;
    pInfo->flags = s->flags;
    pInfo->ulDeviceError = 0;
    if (who == CKU_SO)
        pInfo->state = CKS_RW_SO_FUNCTIONS;
    else if (who == CKU_USER)
        pInfo->state = rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
    else
        pInfo->state = rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
    session_put(s);
    return CKR_OK;
}

CK_RV C_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR p, CK_ULONG_PTR l)
{
    (void)h; (void)p; (void)l;
    return g_st.initialized ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED;
}

CK_RV C_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR p, CK_ULONG l, CK_OBJECT_HANDLE e, CK_OBJECT_HANDLE a)
{
    (void)h; (void)p; (void)l; (void)e; (void)a;
    return g_st.initialized ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED;
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    st_slot *sl = &g_st.slots[s->slot];
    unsigned char mk[ST_MK_LEN];
    if (userType == CKU_CONTEXT_SPECIFIC) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (userType != CKU_SO && userType != CKU_USER) {
        rv = CKR_USER_TYPE_INVALID;
        goto out;
    }
    pthread_mutex_lock(&g_st.lock);
    if (sl->login == userType)
        rv = CKR_USER_ALREADY_LOGGED_IN;
    else if (sl->login != NOBODY)
        rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
    else if (userType == CKU_SO && slot_session_count(s->slot, 0) != slot_session_count(s->slot, 1))
        rv = CKR_SESSION_READ_ONLY_EXISTS;
    pthread_mutex_unlock(&g_st.lock);
    if (rv != CKR_OK)
        goto out;
    rv = pin_verify(sl, userType == CKU_SO, pPin, ulPinLen, mk);
    if (rv != CKR_OK)
        goto out;
    pthread_mutex_lock(&g_st.lock);
    if (sl->login != NOBODY) {
        rv = sl->login == userType ? CKR_USER_ALREADY_LOGGED_IN : CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
    } else {
        memcpy(sl->mk, mk, ST_MK_LEN);
        sl->mk_ok = 1;
        sl->login = userType;
        store_sync(sl);
        store_unlock_objects(sl);
    }
    pthread_mutex_unlock(&g_st.lock);
out:
    OPENSSL_cleanse(mk, sizeof(mk));
    session_put(s);
    return rv;
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession)
{
    CK_RV rv;
    st_session *s = session_get(hSession, &rv);
    if (!s)
        return rv;
    pthread_mutex_lock(&g_st.lock);
    st_slot *sl = &g_st.slots[s->slot];
    if (sl->login == NOBODY)
        rv = CKR_USER_NOT_LOGGED_IN;
    else
        slot_logout_locked(sl);
    pthread_mutex_unlock(&g_st.lock);
    if (rv == CKR_OK)
        slot_drop_session_caches(s->slot);
    session_put(s);
    return rv;
}

CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
    (void)flags; (void)pSlot; (void)pReserved;
    return g_st.initialized ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED;
}

CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE h)
{
    (void)h;
    return g_st.initialized ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}

CK_RV C_CancelFunction(CK_SESSION_HANDLE h)
{
    (void)h;
    return g_st.initialized ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* ------------------------------------------------------------------ function list */

CK_FUNCTION_LIST st_function_list = {
    { 2, 40 },
    C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo,
    C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession,
    C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState, C_SetOperationState, C_Login, C_Logout,
    C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue,
    C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate,
    C_EncryptFinal, C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest,
    C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal,
    C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal,
    C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate, C_DecryptDigestUpdate, C_SignEncryptUpdate,
    C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey,
    C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent,
};
