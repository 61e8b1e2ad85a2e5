"""Object identifiers used across the RA centre (GM/T 0006, GM/T 0010, GM/T 0015, RFC 5480, RFC 8017)."""


class OID:
    """Dotted OID strings, grouped by the standard that assigns them."""

    # GM/T 0006 / GB/T 33560: cryptographic algorithm identifiers
    SM2_CURVE = "1.2.156.10197.1.301"          # sm2p256v1 named curve (id-ecPublicKey params)
    SM2_SIGN = "1.2.156.10197.1.301.1"
    SM2_EXCHANGE = "1.2.156.10197.1.301.2"     # GmSSL uses this for encryption; accept on input
    SM2_ENCRYPT = "1.2.156.10197.1.301.3"      # emit this one
    SM3 = "1.2.156.10197.1.401"
    HMAC_SM3 = "1.2.156.10197.1.401.2"
    SM2_WITH_SM3 = "1.2.156.10197.1.501"
    SM4_ECB = "1.2.156.10197.1.104.1"
    SM4_CBC = "1.2.156.10197.1.104.2"
    SM4_GCM = "1.2.156.10197.1.104.8"

    # GM/T 0010 / GB/T 35275 content types
    GMT_DATA = "1.2.156.10197.6.1.4.2.1"
    GMT_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
    GMT_ENVELOPED_DATA = "1.2.156.10197.6.1.4.2.3"
    GMT_SIGNED_AND_ENVELOPED_DATA = "1.2.156.10197.6.1.4.2.4"
    GMT_ENCRYPTED_DATA = "1.2.156.10197.6.1.4.2.5"
    GMT_KEY_AGREEMENT_INFO = "1.2.156.10197.6.1.4.2.6"

    # GM/T 0015 identity extensions (XiPKI's reading of GM/T 0015-2023)
    ID_CARD_NUMBER = "1.2.156.10260.4.1.1.1"
    PASSPORT_NUMBER = "1.2.156.10260.4.1.1.2"
    SOCIAL_INSURANCE_NUMBER = "1.2.156.10260.4.1.2"
    UNIFIED_SOCIAL_CREDIT_CODE = "1.2.156.10260.4.1.4.4"

    # RFC 5480 / RFC 5758 / RFC 8017
    EC_PUBLIC_KEY = "1.2.840.10045.2.1"
    P256 = "1.2.840.10045.3.1.7"
    P384 = "1.3.132.0.34"
    ECDSA_SHA256 = "1.2.840.10045.4.3.2"
    ECDSA_SHA384 = "1.2.840.10045.4.3.3"
    RSA = "1.2.840.113549.1.1.1"
    SHA256_RSA = "1.2.840.113549.1.1.11"
    SHA384_RSA = "1.2.840.113549.1.1.12"
    SHA512_RSA = "1.2.840.113549.1.1.13"
    RSASSA_PSS = "1.2.840.113549.1.1.10"
    SHA256 = "2.16.840.1.101.3.4.2.1"
    SHA384 = "2.16.840.1.101.3.4.2.2"
    SHA512 = "2.16.840.1.101.3.4.2.3"
