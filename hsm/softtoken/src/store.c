/*
 * store.c - persistent token storage (PKCS#11 v2.40 base 2.4 "token objects" and 4.4
 * "CKA_TOKEN"; PIN handling of 5.6 C_InitToken/C_InitPIN/C_SetPIN).
 *
 * Layout of one token (one slot) directory:
 *   token.meta          label, serial, token uid, PIN failure counters, and the token
 *                       master key (32 random bytes) wrapped twice with AES-256-GCM: under
 *                       PBKDF2-HMAC-SHA256(SO PIN, salt) and under PBKDF2(user PIN, salt);
 *                       SHA-256 checksum.
 *   objects/<uid>.obj   one file per token object: clear part (non-secret attributes) with
 *                       SHA-256 checksum, and secret part (key material) sealed with
 *                       AES-256-GCM under the master key, AAD = "RCST-OBJ1" || token uid ||
 *                       object uid || SHA-256(clear part), so records cannot be swapped
 *                       between objects or tokens, nor their clear parts edited.
 *   gen                 storage generation counter, bumped by every write; other
 *                       processes compare it (one small read) to notice new objects.
 *   lock                flock(2) target serialising writers across processes and threads.
 * Every file write is atomic: temp file, fsync, rename, fsync of the directory.
 * The clear parts' checksum detects corruption, not tampering: an attacker with write
 * access to the directory can delete objects or reset PIN counters, never read or forge
 * key material.
 */
#include "st.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_MAGIC "RCSTMETA"
#define OBJ_MAGIC  "RCSTOBJ1"
#define META_SIZE  (8 + 4 + 32 + 16 + 16 + 4 * 5 + 16 + ST_WRAP_LEN + 16 + ST_WRAP_LEN + 32)
#define MAX_FILE   (16u << 20)

/* ------------------------------------------------------------------ AEAD + PBKDF2 */

static int aead_seal(const unsigned char key[32], const unsigned char *aad, size_t aadl,
                     const unsigned char *pt, size_t ptl, unsigned char *out /* 12+ptl+16 */)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l, ok = c && st_random(out, 12) == 0 &&
                EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out) &&
                EVP_EncryptUpdate(c, NULL, &l, aad, (int)aadl) &&
                EVP_EncryptUpdate(c, out + 12, &l, pt, (int)ptl) && (size_t)l == ptl &&
                EVP_EncryptFinal_ex(c, out + 12 + l, &l) &&
                EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + ptl);
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* 0 ok, 1 authentication failure, -1 error */
static int aead_open(const unsigned char key[32], const unsigned char *aad, size_t aadl,
                     const unsigned char *in, size_t inl, unsigned char *pt /* inl-28 */)
{
    if (inl < 28)
        return 1;
    size_t ptl = inl - 28;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l;
    if (!c)
        return -1;
    int ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) &&
             EVP_DecryptUpdate(c, NULL, &l, aad, (int)aadl) &&
             EVP_DecryptUpdate(c, pt, &l, in + 12, (int)ptl) &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + 12 + ptl));
    int fin = ok ? EVP_DecryptFinal_ex(c, pt + l, &l) : 0;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return -1;
    if (fin <= 0) {
        OPENSSL_cleanse(pt, ptl);
        return 1;
    }
    return 0;
}

static int pin_kek(const CK_UTF8CHAR *pin, CK_ULONG pinlen, const unsigned char *salt, uint32_t iter,
                   unsigned char kek[32])
{
    return PKCS5_PBKDF2_HMAC((const char *)pin, (int)pinlen, salt, ST_SALT_LEN, (int)iter,
                             EVP_sha256(), 32, kek) == 1 ? 0 : -1;
}

static size_t mk_aad(unsigned char *aad, const unsigned char *uid, int role)
{
    memcpy(aad, "RCST-MK1", 8);
    memcpy(aad + 8, uid, ST_UID_LEN);
    aad[8 + ST_UID_LEN] = (unsigned char)role;
    return 9 + ST_UID_LEN;
}

int pin_wrap_mk(const unsigned char *mk, const unsigned char *uid, int role, const CK_UTF8CHAR *pin,
                CK_ULONG pinlen, uint32_t iter, unsigned char salt[ST_SALT_LEN], unsigned char wrap[ST_WRAP_LEN])
{
    unsigned char kek[32], aad[32];
    size_t al = mk_aad(aad, uid, role);
    int r = -1;
    if (st_random(salt, ST_SALT_LEN) == 0 && pin_kek(pin, pinlen, salt, iter, kek) == 0)
        r = aead_seal(kek, aad, al, mk, ST_MK_LEN, wrap);
    OPENSSL_cleanse(kek, sizeof(kek));
    return r;
}

int pin_unwrap_mk(unsigned char *mk, const unsigned char *uid, int role, const CK_UTF8CHAR *pin,
                  CK_ULONG pinlen, uint32_t iter, const unsigned char salt[ST_SALT_LEN],
                  const unsigned char wrap[ST_WRAP_LEN])
{
    unsigned char kek[32], aad[32];
    size_t al = mk_aad(aad, uid, role);
    int r = -1;
    if (pin_kek(pin, pinlen, salt, iter, kek) == 0)
        r = aead_open(kek, aad, al, wrap, ST_WRAP_LEN, mk);
    OPENSSL_cleanse(kek, sizeof(kek));
    return r;
}

/* ------------------------------------------------------------------ files */

static void pathcat(char *out, size_t n, const st_slot *s, const char *name)
{
    snprintf(out, n, "%s/%s", s->path, name);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* atomic replace of dir/name with data */
static int atomic_write(const char *dir, const char *name, const unsigned char *data, size_t len)
{
    char tmp[4400], fin[4400];
    unsigned char r[8];
    char rh[17];
    if (st_random(r, sizeof(r)))
        return -1;
    st_hex(r, sizeof(r), rh);
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-%ld-%s", dir, name, (long)getpid(), rh);
    snprintf(fin, sizeof(fin), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (write_all(fd, data, len) || fsync(fd)) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, fin)) {
        unlink(tmp);
        return -1;
    }
    fsync_dir(dir);
    return 0;
}

/* read a whole file; 0 ok, 1 absent, -1 error */
static int read_file(const char *path, unsigned char **buf, size_t *len, struct stat *sto)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    struct stat st;
    if (fstat(fd, &st) || st.st_size < 0 || (size_t)st.st_size > MAX_FILE) {
        close(fd);
        return -1;
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *b = OPENSSL_malloc(n ? n : 1);
    if (!b) {
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        OPENSSL_clear_free(b, n ? n : 1);
        return -1;
    }
    *buf = b;
    *len = n;
    if (sto)
        *sto = st;
    return 0;
}

int store_lock(st_slot *s)
{
    char p[4400];
    pathcat(p, sizeof(p), s, "lock");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX)) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

void store_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

static int mkdir_p(const char *path)
{
    char tmp[4400];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) && errno != EEXIST)
        return -1;
    return 0;
}

int store_init_slot(st_slot *s)
{
    char p[4400];
    pathcat(p, sizeof(p), s, "objects");
    if (mkdir_p(p))
        return -1;
    if (store_read_meta(s, &s->meta) < 0)
        s->meta.corrupt = 1;
    s->gen_valid = 0;
    return 0;
}

/* ------------------------------------------------------------------ meta */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void sha256(const unsigned char *d, size_t n, unsigned char out[32])
{
    unsigned int l;
    EVP_Digest(d, n, out, &l, EVP_sha256(), NULL);
}

int store_read_meta(st_slot *s, st_meta *m)
{
    char p[4400];
    unsigned char *b = NULL, h[32];
    size_t n;
    pathcat(p, sizeof(p), s, "token.meta");
    memset(m, 0, sizeof(*m));
    int r = read_file(p, &b, &n, NULL);
    if (r == 1)
        return 0;
    if (r < 0)
        goto corrupt;
    if (n != META_SIZE || memcmp(b, META_MAGIC, 8) || get32(b + 8) != 1)
        goto corrupt;
    sha256(b, n - 32, h);
    if (CRYPTO_memcmp(h, b + n - 32, 32))
        goto corrupt;
    size_t o = 12;
    memcpy(m->label, b + o, 32); o += 32;
    memcpy(m->serial, b + o, 16); o += 16;
    memcpy(m->uid, b + o, 16); o += 16;
    m->user_pin_set = get32(b + o); o += 4;
    m->so_fail = get32(b + o); o += 4;
    m->user_fail = get32(b + o); o += 4;
    m->so_iter = get32(b + o); o += 4;
    m->user_iter = get32(b + o); o += 4;
    memcpy(m->so_salt, b + o, 16); o += 16;
    memcpy(m->so_wrap, b + o, ST_WRAP_LEN); o += ST_WRAP_LEN;
    memcpy(m->user_salt, b + o, 16); o += 16;
    memcpy(m->user_wrap, b + o, ST_WRAP_LEN);
    m->present = 1;
    OPENSSL_free(b);
    return 0;
corrupt:
    if (b)
        OPENSSL_free(b);
    memset(m, 0, sizeof(*m));
    m->corrupt = 1;
    st_log("%s: corrupt token file (bad size, magic or checksum)", p);
    return -1;
}

/* caller holds the store lock */
int store_write_meta(st_slot *s, const st_meta *m)
{
    unsigned char b[META_SIZE];
    size_t o = 0;
    memcpy(b, META_MAGIC, 8); o = 8;
    put32(b + o, 1); o += 4;
    memcpy(b + o, m->label, 32); o += 32;
    memcpy(b + o, m->serial, 16); o += 16;
    memcpy(b + o, m->uid, 16); o += 16;
    put32(b + o, m->user_pin_set); o += 4;
    put32(b + o, m->so_fail); o += 4;
    put32(b + o, m->user_fail); o += 4;
    put32(b + o, m->so_iter); o += 4;
    put32(b + o, m->user_iter); o += 4;
    memcpy(b + o, m->so_salt, 16); o += 16;
    memcpy(b + o, m->so_wrap, ST_WRAP_LEN); o += ST_WRAP_LEN;
    memcpy(b + o, m->user_salt, 16); o += 16;
    memcpy(b + o, m->user_wrap, ST_WRAP_LEN); o += ST_WRAP_LEN;
    sha256(b, o, b + o);
    if (atomic_write(s->path, "token.meta", b, sizeof(b)))
        return -1;
    return store_bump_gen(s);
}

/* ------------------------------------------------------------------ generation */

static uint64_t read_gen(st_slot *s)
{
    char p[4400];
    unsigned char b[8];
    uint64_t g = 0;
    pathcat(p, sizeof(p), s, "gen");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (read(fd, b, 8) == 8)
        g = ((uint64_t)get32(b) << 32) | get32(b + 4);
    close(fd);
    return g;
}

/* caller holds the store lock */
int store_bump_gen(st_slot *s)
{
    uint64_t g = read_gen(s);
    unsigned char b[8];
    put32(b, (uint32_t)((g + 1) >> 32));
    put32(b + 4, (uint32_t)(g + 1));
    if (atomic_write(s->path, "gen", b, 8))
        return -1;
    if (s->gen_valid && s->gen == g)
        s->gen = g + 1;    /* we had seen everything before our own change */
    return 0;
}

/* ------------------------------------------------------------------ objects */

static size_t obj_aad(unsigned char *aad, const st_slot *s, const st_object *o)
{
    memcpy(aad, "RCST-OBJ1", 9);
    memcpy(aad + 9, s->meta.uid, ST_UID_LEN);
    memcpy(aad + 9 + ST_UID_LEN, o->uid, ST_UID_LEN);
    memcpy(aad + 9 + 2 * ST_UID_LEN, o->chash, 32);
    return 9 + 2 * ST_UID_LEN + 32;
}

static int decrypt_secret(st_slot *s, st_object *o)
{
    unsigned char aad[96];
    size_t al = obj_aad(aad, s, o);
    if (o->enc_len < 28)
        return 1;
    size_t pl = o->enc_len - 28;
    unsigned char *pt = OPENSSL_malloc(pl ? pl : 1);
    if (!pt)
        return -1;
    int r = aead_open(s->mk, aad, al, o->enc, o->enc_len, pt);
    if (r == 0 && obj_deserialize(o, pt, pl, 1))
        r = 1;
    OPENSSL_clear_free(pt, pl ? pl : 1);
    return r;
}

static void obj_name(const st_object *o, char *name)
{
    st_hex(o->uid, ST_UID_LEN, name);
    strcat(name, ".obj");
}

CK_RV store_write_object(st_slot *s, st_object *o)
{
    unsigned char *clear = NULL, *sec = NULL, *file = NULL, *enc = NULL;
    size_t cl = 0, sl = 0, el = 0, fl = 0, fcap = 0;
    CK_RV rv = CKR_HOST_MEMORY;
    unsigned char len4[4], h[32];
    char dir[4400], name[64], path[4500];
    int fd = -1;
    struct stat st;

    if (obj_serialize(o, 0, &clear, &cl) || obj_serialize(o, 1, &sec, &sl))
        goto done;
    sha256(clear, cl, o->chash);
    int has_secret = sl > 4;          /* more than an empty count */
    if (has_secret) {
        if (!s->mk_ok) {
            rv = CKR_USER_NOT_LOGGED_IN;
            goto done;
        }
        unsigned char aad[96];
        size_t al = obj_aad(aad, s, o);
        el = 12 + sl + 16;
        enc = OPENSSL_malloc(el);
        if (!enc || aead_seal(s->mk, aad, al, sec, sl, enc)) {
            rv = CKR_FUNCTION_FAILED;
            goto done;
        }
    }
    put32(len4, (uint32_t)cl);
    if (st_buf_append(&file, &fl, &fcap, OBJ_MAGIC, 8) || st_buf_append(&file, &fl, &fcap, o->uid, ST_UID_LEN) ||
        st_buf_append(&file, &fl, &fcap, len4, 4) || st_buf_append(&file, &fl, &fcap, clear, cl))
        goto done;
    put32(len4, (uint32_t)el);
    if (st_buf_append(&file, &fl, &fcap, len4, 4) || st_buf_append(&file, &fl, &fcap, enc, el))
        goto done;
    sha256(file, fl, h);
    if (st_buf_append(&file, &fl, &fcap, h, 32))
        goto done;

    pathcat(dir, sizeof(dir), s, "objects");
    obj_name(o, name);
    fd = store_lock(s);
    if (fd < 0 || atomic_write(dir, name, file, fl) || store_bump_gen(s)) {
        rv = CKR_DEVICE_ERROR;
        goto done;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &st) == 0) {
        o->st_ino = st.st_ino;
        o->st_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        o->st_size = st.st_size;
    }
    OPENSSL_free(o->enc);
    o->enc = enc;
    o->enc_len = el;
    enc = NULL;
    rv = CKR_OK;
done:
    store_unlock(fd);
    OPENSSL_clear_free(clear, cl);
    OPENSSL_clear_free(sec, sl);
    OPENSSL_free(enc);
    OPENSSL_free(file);
    return rv;
}

CK_RV store_delete_object(st_slot *s, st_object *o)
{
    char name[64], path[4500], dir[4400];
    pathcat(dir, sizeof(dir), s, "objects");
    obj_name(o, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = store_lock(s);
    if (fd < 0)
        return CKR_DEVICE_ERROR;
    CK_RV rv = CKR_OK;
    if (unlink(path) && errno != ENOENT)
        rv = CKR_DEVICE_ERROR;
    fsync_dir(dir);
    if (rv == CKR_OK && store_bump_gen(s))
        rv = CKR_DEVICE_ERROR;
    store_unlock(fd);
    return rv;
}

/* caller holds the store lock */
CK_RV store_wipe_objects(st_slot *s)
{
    char dir[4400], path[4700];
    pathcat(dir, sizeof(dir), s, "objects");
    DIR *d = opendir(dir);
    if (!d)
        return CKR_DEVICE_ERROR;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    fsync_dir(dir);
    return CKR_OK;
}

/* parse one object file; NULL on corruption (logged) */
static st_object *load_object(st_slot *s, const char *path, const struct stat *want)
{
    unsigned char *b = NULL, h[32];
    size_t n;
    struct stat st;
    st_object *o = NULL;
    const char *why = "unreadable";
    if (read_file(path, &b, &n, &st))
        goto bad;
    (void)want;
    why = "bad header or checksum";
    if (n < 8 + ST_UID_LEN + 4 + 4 + 32 || memcmp(b, OBJ_MAGIC, 8))
        goto bad;
    sha256(b, n - 32, h);
    if (CRYPTO_memcmp(h, b + n - 32, 32))
        goto bad;
    size_t p = 8 + ST_UID_LEN, end = n - 32;
    uint32_t cl = get32(b + p);
    p += 4;
    if (cl > end - p || end - p - cl < 4)
        goto bad;
    o = obj_new();
    if (!o)
        goto bad;
    memcpy(o->uid, b + 8, ST_UID_LEN);
    why = "bad attribute encoding";
    if (obj_deserialize(o, b + p, cl, 0))
        goto bad;
    sha256(b + p, cl, o->chash);
    p += cl;
    uint32_t el = get32(b + p);
    p += 4;
    if (el != end - p)
        goto bad;
    if (el) {
        o->enc = OPENSSL_memdup(b + p, el);
        if (!o->enc)
            goto bad;
        o->enc_len = el;
        o->locked = 1;
    }
    obj_refresh_cache(o);
    o->is_token = 1;
    o->slot = s->id;
    o->st_ino = st.st_ino;
    o->st_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    o->st_size = st.st_size;
    if (o->locked && s->mk_ok) {
        int r = decrypt_secret(s, o);
        if (r == 0) {
            o->locked = 0;
        } else {
            o->broken = 1;
            st_log("%s: secret part failed authentication; object unusable", path);
        }
    }
    OPENSSL_free(b);
    return o;
bad:
    st_log("%s: corrupt object file (%s); ignored, other objects unaffected", path, why);
    obj_free(o);
    OPENSSL_free(b);
    return NULL;
}

static int is_obj_name(const char *n)
{
    size_t l = strlen(n);
    if (l != 2 * ST_UID_LEN + 4 || strcmp(n + 2 * ST_UID_LEN, ".obj"))
        return 0;
    for (size_t i = 0; i < 2 * ST_UID_LEN; i++)
        if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
            return 0;
    return 1;
}

/* caller holds g_st.lock */
CK_RV store_sync(st_slot *s)
{
    uint64_t g = read_gen(s);
    if (s->gen_valid && g == s->gen)
        return CKR_OK;

    st_meta m;
    int mr = store_read_meta(s, &m);
    if (mr < 0 || !m.present || memcmp(m.uid, s->meta.uid, ST_UID_LEN)) {
        /* token re-initialised (or damaged) elsewhere: forget objects and login */
        for (size_t i = 0; i < g_st.nobjs; i++) {
            st_object *o = g_st.objs[i];
            if (o && o->is_token && o->slot == s->id)
                objs_remove(o);
        }
        if (s->mk_ok && memcmp(m.uid, s->meta.uid, ST_UID_LEN)) {
            OPENSSL_cleanse(s->mk, sizeof(s->mk));
            s->mk_ok = 0;
            s->login = (CK_USER_TYPE)-1;
        }
    }
    s->meta = m;
    if (mr < 0) {
        s->meta.corrupt = 1;
        s->gen = g;
        s->gen_valid = 1;
        return CKR_OK;
    }

    char dir[4400], path[4700];
    pathcat(dir, sizeof(dir), s, "objects");
    for (size_t i = 0; i < g_st.nobjs; i++)
        if (g_st.objs[i] && g_st.objs[i]->is_token && g_st.objs[i]->slot == s->id)
            g_st.objs[i]->seen = 0;
    DIR *d = opendir(dir);
    if (!d)
        return CKR_DEVICE_ERROR;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_obj_name(e->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st))
            continue;
        st_object *cur = NULL;
        for (size_t i = 0; i < g_st.nobjs && !cur; i++) {
            st_object *o = g_st.objs[i];
            if (o && o->is_token && o->slot == s->id) {
                char nm[64];
                obj_name(o, nm);
                if (!strcmp(nm, e->d_name))
                    cur = o;
            }
        }
        int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (cur && cur->st_ino == st.st_ino && cur->st_mtime_ns == mt && cur->st_size == st.st_size) {
            cur->seen = 1;
            continue;
        }
        st_object *n = load_object(s, path, &st);
        if (!n) {
            if (cur)
                cur->seen = 1;        /* keep what we had rather than lose it */
            continue;
        }
        n->seen = 1;
        if (cur) {
            n->handle = cur->handle;
            g_st.objs[cur->handle - 1] = n;
            obj_free(cur);
        } else if (objs_add(n) != CKR_OK) {
            obj_free(n);
        }
    }
    closedir(d);
    for (size_t i = 0; i < g_st.nobjs; i++) {
        st_object *o = g_st.objs[i];
        if (o && o->is_token && o->slot == s->id && !o->seen)
            objs_remove(o);
    }
    s->gen = g;
    s->gen_valid = 1;
    return CKR_OK;
}

/* after login: decrypt the secret parts of this token's objects (g_st.lock held) */
CK_RV store_unlock_objects(st_slot *s)
{
    for (size_t i = 0; i < g_st.nobjs; i++) {
        st_object *o = g_st.objs[i];
        if (!o || !o->is_token || o->slot != s->id || !o->locked || o->broken)
            continue;
        if (!o->enc_len) {
            o->locked = 0;
            continue;
        }
        int r = decrypt_secret(s, o);
        if (r == 0) {
            o->locked = 0;
        } else {
            char nm[64];
            obj_name(o, nm);
            o->broken = 1;
            st_log("object %s: secret part failed authentication; object unusable", nm);
        }
    }
    return CKR_OK;
}
