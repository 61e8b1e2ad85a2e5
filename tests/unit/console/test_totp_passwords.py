"""RFC 4226 / RFC 6238 test vectors for the one-time codes, the verification window and replay step,
and the scrypt password hashes (format, parameters, wrong passwords, rehash on parameter change)."""
from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from racentre import passwords, totp

SEEDS = {"sha1": b"12345678901234567890", "sha256": b"12345678901234567890123456789012",
         "sha512": b"1234567890123456789012345678901234567890123456789012345678901234"}
# RFC 6238 Appendix B: time -> (SHA1, SHA256, SHA512), 8 digits
RFC6238 = {59: ("94287082", "46119246", "90693936"), 1111111109: ("07081804", "68084774", "25091201"),
           1111111111: ("14050471", "67062674", "99943326"), 1234567890: ("89005924", "91819424", "93441116"),
           2000000000: ("69279037", "90698825", "38618901"), 20000000000: ("65353130", "77737706", "47863826")}
# RFC 4226 Appendix D: counter -> HOTP (6 digits)
RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]


@pytest.mark.parametrize("at", sorted(RFC6238))
def test_rfc6238_vectors(at):
    for digest, expected in zip(("sha1", "sha256", "sha512"), RFC6238[at]):
        assert totp.totp(SEEDS[digest], at, digits=8, digest=digest) == expected


def test_rfc4226_vectors():
    assert [totp.hotp(SEEDS["sha1"], i) for i in range(10)] == RFC4226


def test_verify_window_and_step():
    key = totp.secret_bytes(totp.new_secret())
    now = 1_700_000_000
    step = totp.time_step(now)
    assert totp.verify(key, totp.totp(key, now), now) == step
    assert totp.verify(key, totp.totp(key, now - 30), now) == step - 1        # one step of clock skew
    assert totp.verify(key, totp.totp(key, now + 30), now) == step + 1
    assert totp.verify(key, totp.totp(key, now - 90), now) is None           # outside the window
    assert totp.verify(key, "12345", now) is None and totp.verify(key, "abcdef", now) is None


def test_secret_and_uri():
    secret = totp.new_secret()
    assert len(totp.secret_bytes(secret)) == 20
    uri = totp.provisioning_uri(secret, "张三")
    # Key Uri Format: otpauth://totp/Issuer:account?secret=&issuer=&algorithm=&digits=&period=
    parsed = urlsplit(uri)
    assert (parsed.scheme, parsed.netloc, unquote(parsed.path)) == ("otpauth", "totp", "/RA Centre:张三")
    query = parse_qs(parsed.query)
    assert query == {"secret": [secret], "issuer": ["RA Centre"], "algorithm": ["SHA1"], "digits": ["6"],
                     "period": ["30"]}
    # the code an authenticator computes from that URI is the one we accept (RFC 6238 Appendix B vector too)
    assert totp.verify(totp.secret_bytes(secret), totp.totp(totp.secret_bytes(secret))) is not None
    assert totp.totp(b"12345678901234567890", 59, digits=8) == "94287082"


def test_scrypt_hashes():
    stored = passwords.hash_password("correct horse battery staple")
    assert stored.startswith(f"$scrypt$ln={passwords.LOG_N},r=8,p=1$") and passwords.LOG_N >= 17
    assert "correct horse" not in stored
    assert passwords.verify_password("correct horse battery staple", stored)
    assert not passwords.verify_password("correct horse battery stapler", stored)
    assert not passwords.verify_password("anything", None) and not passwords.verify_password("x", "garbage")
    assert passwords.hash_password("correct horse battery staple") != stored          # salted
    assert not passwords.needs_rehash(stored)
    assert passwords.needs_rehash(stored.replace(f"ln={passwords.LOG_N}", "ln=14"))
    with pytest.raises(passwords.WeakPassword):
        passwords.hash_password("short")


@pytest.mark.parametrize("weak", ["aaaaaaaaaaaa", "password1234", "qwertyuiop123", "123456789012", "iloveyou2026!",
                                  "wangwei123456"])
def test_common_and_patterned_passwords_are_refused(weak):
    """Length alone let "aaaaaaaaaaaa" through (issue 15): common passwords, keyboard walks, repeats and
    the account's own name are refused with a reason."""
    with pytest.raises(passwords.WeakPassword) as exc:
        passwords.hash_password(weak, ("wangwei",))
    assert "refused" in str(exc.value)
    assert passwords.verify_password("correct horse battery staple",
                                     passwords.hash_password("correct horse battery staple", ("wangwei",)))
