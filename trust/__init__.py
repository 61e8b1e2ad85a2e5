"""Trust services for applications (签名验签, 身份认证, 责任认定): GM/T 0029 signature-server functions with the
GM/T 0020 SOF_* vocabulary — application keys in the HSM, raw and CMS signatures, verification with
certificate validation, certificate information, SM2 envelopes, certificate login, signed evidence."""
