/*
 * st.h - internal interfaces of the RA Centre SM2 soft token (PKCS#11 v2.40 module).
 *
 * Module map (each .c file names the PKCS#11 v2.40 / GB/T clauses it implements):
 *   p11_main.c    C_Initialize .. C_Logout: library, slot, token, session, PIN functions
 *   p11_objects.c object management functions (v2.40 base 5.7) and C_GenerateRandom
 *   p11_crypto.c  encrypt/decrypt/digest/sign/verify entry points (v2.40 base 5.8-5.12)
 *   p11_keys.c    C_GenerateKey(Pair), C_WrapKey, C_UnwrapKey (v2.40 base 5.14)
 *   object.c      the object model: attributes, templates, defaults, access rules
 *   keys.c        key material <-> OpenSSL EVP_PKEY, EC points, SM2 Z value
 *   sm2.c         GB/T 32918 helpers: Z value, raw r||s <-> DER conversion
 *   sm2p256.c     own constant-time sm2p256v1 code: k*G comb, k*P windows, SM2 sign/verify
 *                 (GB/T 32918.2), encrypt/decrypt (GB/T 32918.4); every SM2 operation runs
 *                 here unless RACENTRE_SOFTTOKEN_SM2_IMPL=openssl (OpenSSL 3.0 has no fast SM2)
 *   sm2p256_field.c  its arithmetic mod p and mod n
 *   mech.c        the mechanism table (C_GetMechanismList/Info)
 *   store.c       persistent, encrypted token storage, PIN wrapping and file locking
 *   config.c      RACENTRE_SOFTTOKEN_DIR and softtoken.conf
 *   util.c        small helpers
 *
 * Locking model: one process-wide mutex (g_st.lock) guards the slot, session and object
 * tables and is only held for table look-ups and bookkeeping, never during signing or
 * other cryptography, never during PBKDF2.  Each session has its own mutex for its
 * operation state.  Operations hold their own reference to the key's EVP_PKEY (or, for SM2,
 * to its sm2p256_key), so a concurrent C_DestroyObject cannot pull the key from under a
 * running signature.  Both per-key caches are built under g_st.lock and dropped at logout.
 */
#ifndef ST_H
#define ST_H

#define CRYPTOKI_COMPAT 1
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/evp.h>
#include "racentre_vendor.h"
#include "sm2p256.h"

#define ST_MAX_SLOTS        64
#define ST_MK_LEN           32      /* token master key: AES-256-GCM */
#define ST_SALT_LEN         16
#define ST_UID_LEN          16
#define ST_WRAP_LEN         (12 + ST_MK_LEN + 16)
#define ST_MIN_PIN          4
#define ST_MAX_PIN          255

#define ST_UNAVAIL          ((CK_ULONG)-1)   /* CK_UNAVAILABLE_INFORMATION */

/* ---------------- configuration (config.c) ---------------- */
typedef struct {
    char dir[4096];
    unsigned slots;
    unsigned pbkdf2_iterations;
    unsigned max_pin_failures;
} st_config;

int st_config_load(st_config *cfg);     /* 0 ok, -1 error */

/* ---------------- attributes and objects (object.c) ---------------- */
typedef struct {
    CK_ATTRIBUTE_TYPE type;
    CK_ULONG len;
    unsigned char *val;
    int secret;            /* stored encrypted under the token master key */
} st_attr;

struct st_session;
typedef struct st_session st_session;

typedef struct st_object {
    CK_OBJECT_HANDLE handle;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE owner;       /* session objects: creating session; 0 = token object */
    int is_token;
    unsigned char uid[ST_UID_LEN]; /* object identity, bound into its AEAD */
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE ktype;             /* CKA_KEY_TYPE as stored (CKK_EC stays CKK_EC) */
    int curve;                     /* ST_CURVE_* for EC/SM2 keys */
    int is_private;                /* CKA_PRIVATE */
    int locked;                    /* token object whose secret part is not decrypted */
    int broken;                    /* secret part failed authentication */
    size_t nattrs, cap;
    st_attr *attrs;
    unsigned char *enc;            /* encrypted secret part, as stored */
    size_t enc_len;
    ino_t st_ino;                  /* file stamp, to notice rewrites by other processes */
    int64_t st_mtime_ns;
    off_t st_size;
    int seen;
    unsigned char chash[32];       /* SHA-256 of the stored clear part (AEAD binding) */
    EVP_PKEY *pkey;                /* cached key, built on first use, freed at logout */
    unsigned char zdef[32];        /* SM2 Z for the default ID, valid if zdef_ok */
    int zdef_ok;
    sm2p256_key *sm2;              /* SM2 keys: cached own key (d, (1+d)^-1), freed at logout */
    int sm2_gen;                   /* material made by our SM2 keygen: pub = d*G, no re-check */
} st_object;

enum { ST_CURVE_NONE = 0, ST_CURVE_P256, ST_CURVE_P384, ST_CURVE_SM2 };

st_object *obj_new(void);
void obj_free(st_object *o);
st_attr *obj_attr(const st_object *o, CK_ATTRIBUTE_TYPE t);
int obj_set(st_object *o, CK_ATTRIBUTE_TYPE t, const void *v, CK_ULONG len);
int obj_set_bool(st_object *o, CK_ATTRIBUTE_TYPE t, CK_BBOOL b);
int obj_set_ulong(st_object *o, CK_ATTRIBUTE_TYPE t, CK_ULONG v);
void obj_del(st_object *o, CK_ATTRIBUTE_TYPE t);
CK_BBOOL obj_bool(const st_object *o, CK_ATTRIBUTE_TYPE t, CK_BBOOL dflt);
int obj_is_sm2(const st_object *o);
int obj_is_sensitive_attr(const st_object *o, CK_ATTRIBUTE_TYPE t);
void obj_mark_secrets(st_object *o);
void obj_drop_secrets(st_object *o);     /* logout: wipe decrypted material */
void obj_refresh_cache(st_object *o);    /* cls/ktype/curve/is_private from attrs */
st_object *obj_clone(const st_object *src);
CK_RV st_register_object(st_session *s, st_object *o); /* g_st.lock held */

/* template helpers */
const CK_ATTRIBUTE *tmpl_find(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type);
CK_RV tmpl_check(const CK_ATTRIBUTE *t, CK_ULONG n);
CK_RV tmpl_get_bool(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, CK_BBOOL *out, int *found);
CK_RV tmpl_get_ulong(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, CK_ULONG *out, int *found);

/* object construction (validates and applies defaults) */
enum { ST_ORIGIN_CREATE, ST_ORIGIN_GENERATE, ST_ORIGIN_UNWRAP, ST_ORIGIN_COPY };
CK_RV obj_apply_template(st_object *o, const CK_ATTRIBUTE *t, CK_ULONG n, int origin);
CK_RV obj_finish(st_object *o, int origin, CK_MECHANISM_TYPE genmech);
int obj_match(const st_object *o, const CK_ATTRIBUTE *t, CK_ULONG n);
CK_RV obj_get_attrs(const st_object *o, CK_ATTRIBUTE *t, CK_ULONG n);
CK_RV obj_check_set_attrs(const st_object *o, const CK_ATTRIBUTE *t, CK_ULONG n);

/* serialisation for the store */
int obj_serialize(const st_object *o, int secret_part, unsigned char **out, size_t *outlen);
int obj_deserialize(st_object *o, const unsigned char *in, size_t len, int secret_part);

/* ---------------- key material (keys.c) ---------------- */
int curve_from_params(const unsigned char *der, size_t len);
const unsigned char *curve_params_der(int curve, size_t *len);
size_t curve_bytes(int curve);
CK_RV ec_point_raw(const st_object *o, unsigned char *out, size_t *outlen); /* 04||X||Y */
int ec_point_decode(const unsigned char *in, size_t len, size_t fbytes, unsigned char *out);
CK_RV ec_pub_from_priv(int curve, const unsigned char *d, size_t dlen, unsigned char *pub, size_t *publen);
CK_RV key_build_pkey(st_object *o);           /* fills o->pkey from attributes */
CK_RV key_build_sm2(st_object *o);            /* fills o->sm2 (and zdef) from attributes */
int st_sm2_fast(void);                         /* SM2 on our own code (not RACENTRE_SOFTTOKEN_SM2_IMPL=openssl) */
CK_RV key_from_pkey(st_object *priv, st_object *pub, EVP_PKEY *pk, int curve, int generated);
CK_RV key_validate_import(st_object *o, int generated);      /* checks & completes imported key material */
CK_RV key_to_pkcs8(st_object *o, unsigned char **der, size_t *len);
CK_RV key_from_pkcs8(st_object *o, const unsigned char *der, size_t len);

/* ---------------- SM2 (sm2.c) ---------------- */
int sm2_compute_z(const unsigned char *id, size_t idlen, const unsigned char pub[65], unsigned char z[32]);
int sig_der_to_raw(const unsigned char *der, size_t derlen, unsigned char *raw, size_t n);
int sig_raw_to_der(const unsigned char *raw, size_t n, unsigned char *der, size_t *derlen);

/* ---------------- mechanisms (mech.c) ---------------- */
typedef struct {
    CK_MECHANISM_TYPE type;
    CK_ULONG min, max;
    CK_FLAGS flags;
} st_mech;
const st_mech *mech_find(CK_MECHANISM_TYPE t);
const st_mech *mech_table(size_t *n);

/* ---------------- persistent store (store.c) ---------------- */
typedef struct {
    int present;                    /* token.meta exists and is valid */
    int corrupt;                    /* token.meta exists but failed its checksum */
    char label[32];
    char serial[16];
    unsigned char uid[ST_UID_LEN];
    uint32_t user_pin_set;
    uint32_t so_fail, user_fail;
    uint32_t so_iter, user_iter;
    unsigned char so_salt[ST_SALT_LEN], so_wrap[ST_WRAP_LEN];
    unsigned char user_salt[ST_SALT_LEN], user_wrap[ST_WRAP_LEN];
} st_meta;

typedef struct st_slot {
    CK_SLOT_ID id;
    char path[4200];                /* token directory of this slot */
    st_meta meta;
    uint64_t gen;                   /* last storage generation seen */
    int gen_valid;
    CK_USER_TYPE login;             /* (CK_USER_TYPE)-1 = nobody */
    unsigned char mk[ST_MK_LEN];    /* master key while logged in */
    int mk_ok;
} st_slot;

int store_init_slot(st_slot *s);
int store_read_meta(st_slot *s, st_meta *m);        /* 0 ok / absent, -1 corrupt */
int store_write_meta(st_slot *s, const st_meta *m);
int store_lock(st_slot *s);                         /* returns fd, -1 error */
void store_unlock(int fd);
CK_RV store_sync(st_slot *s);                       /* caller holds g_st.lock */
CK_RV store_write_object(st_slot *s, st_object *o); /* caller holds g_st.lock */
CK_RV store_delete_object(st_slot *s, st_object *o);
CK_RV store_wipe_objects(st_slot *s);
CK_RV store_unlock_objects(st_slot *s);             /* decrypt secret parts after login */
int store_bump_gen(st_slot *s);
int pin_wrap_mk(const unsigned char *mk, const unsigned char *uid, int role, const CK_UTF8CHAR *pin, CK_ULONG pinlen,
                uint32_t iter, unsigned char salt[ST_SALT_LEN], unsigned char wrap[ST_WRAP_LEN]);
int pin_unwrap_mk(unsigned char *mk, const unsigned char *uid, int role, const CK_UTF8CHAR *pin, CK_ULONG pinlen,
                  uint32_t iter, const unsigned char salt[ST_SALT_LEN], const unsigned char wrap[ST_WRAP_LEN]);

/* ---------------- sessions and global state (p11_main.c) ---------------- */
typedef struct {
    int active;
    CK_MECHANISM_TYPE mech;
    EVP_PKEY *pkey;
    sm2p256_key *sm2;               /* own reference, SM2 on our own code */
    EVP_MD_CTX *md;
    EVP_CIPHER_CTX *cctx;
    EVP_MAC_CTX *mac;
    const EVP_MD *sig_md;           /* hash-then-sign digest, or PSS hash */
    const EVP_MD *mgf_md;
    int salt_len;
    int curve;
    unsigned char z[32];
    unsigned char *buf;             /* accumulated input for one-shot mechanisms */
    size_t buflen, bufcap;
    size_t outlen;                  /* fixed output length if known */
    int pad;                        /* symmetric: PKCS#7 padding; RSA: PSS */
    int multi;                      /* a multi-part Update has been done */
    size_t block;
} st_op;

struct st_session {
    CK_SESSION_HANDLE handle;
    CK_SLOT_ID slot;
    CK_FLAGS flags;
    pthread_mutex_t mu;
    int refs;
    int closed;
    st_op sign, verify, enc, dec, digest;
    int find_active;
    CK_OBJECT_HANDLE *found;
    size_t nfound, findpos;
    /* per-session caches for the hot path */
    EVP_PKEY_CTX *sign_pctx, *verify_pctx;
    EVP_PKEY *sign_pctx_key, *verify_pctx_key;
};

typedef struct {
    pthread_mutex_t lock;
    int initialized;
    pid_t pid;
    st_config cfg;
    st_slot slots[ST_MAX_SLOTS];
    unsigned nslots;
    st_session **sessions;          /* indexed by handle-1 */
    size_t nsessions, capsessions;
    st_object **objs;               /* indexed by handle-1 */
    size_t nobjs, capobjs;
    EVP_MD *sm3, *sha1, *sha256, *sha384, *sha512;
    EVP_MAC *hmac;
    int sm2_openssl;                /* RACENTRE_SOFTTOKEN_SM2_IMPL=openssl at C_Initialize */
} st_global;

extern st_global g_st;

st_session *session_get(CK_SESSION_HANDLE h, CK_RV *rv);  /* takes a ref; lock not held */
void session_put(st_session *s);
void op_reset(st_op *op);
void session_drop_caches(st_session *s);
CK_RV objs_add(st_object *o);                  /* caller holds lock; assigns handle */
void objs_remove(st_object *o);                /* caller holds lock; frees o */
st_object *objs_get(CK_OBJECT_HANDLE h);       /* caller holds lock */
int obj_visible(const st_object *o, const st_session *s);
CK_RV obj_lookup(st_session *s, CK_OBJECT_HANDLE h, st_object **out); /* lock held */
int slot_logged_in_user(const st_slot *sl);
int session_is_rw(const st_session *s);

/* ---------------- util.c ---------------- */
void st_padcpy(unsigned char *dst, const char *src, size_t n);
void st_hex(const unsigned char *in, size_t n, char *out);
int st_random(void *buf, size_t n);             /* 0 ok */
int st_private_random(void *buf, size_t n);
void st_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int st_grow(void **arr, size_t *cap, size_t need, size_t elsize);
int st_buf_append(unsigned char **buf, size_t *len, size_t *cap, const void *data, size_t n);
int der_octet_wrap(const unsigned char *in, size_t n, unsigned char **out, size_t *outlen);
int der_read_len(const unsigned char *p, size_t avail, size_t *len, size_t *hdr);

#define ST_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
