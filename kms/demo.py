"""Demo artefacts of the KMC: a subscriber signing key made client-side by OpenSSL, the escrowed
encryption key's SM2EnvelopedKey and SignedAndEnvelopedData, the KMC certificate, and an envelope from
a 2-of-3 judicial recovery to a named recipient.

Integrator hook: ``civil-servant-enc.pem`` needs the CA — pass ``issue_encryption_certificate``
(``(public_key_info, user_cert_no, not_before, not_after) -> DER``) once ca_bridge can issue it; the
KMC certificate is self-signed until ``KeyEscrow.install_certificate`` gets a CA-issued one.
"""
from __future__ import annotations

import dataclasses

import datetime as dt
import secrets
import subprocess
from pathlib import Path
from typing import Callable

from asn1crypto import pem

from kms.identity import self_signed_certificate, subject_name
from kms.recovery import ApprovalBook, Officer
from kms.services import KmsParts
from pkicore.envelope import Party, verify_signed_and_enveloped

DEMO_OFFICERS = tuple(Officer(f"demo-officer-{i}", frozenset({"key_recovery_officer"})) for i in (1, 2, 3))


def _openssl_sm2_key(path: Path) -> bytes:
    """The subscriber's own signing key, generated client-side; returns its SPKI DER."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", str(path)],
                   check=True, capture_output=True)
    path.chmod(0o600)
    return subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"], check=True,
                          capture_output=True).stdout


def write_demo_artefacts(services, out_dir, *, kmc: KmsParts | None = None,
                         issue_encryption_certificate: Callable[[bytes, int, dt.datetime, dt.datetime], bytes]
                         | None = None) -> list[str]:
    """Write the KMC demo artefacts into ``out_dir``; returns the file names written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kmc = kmc or services.kmc
    km = kmc.escrow.km
    written = []

    sub_spki = _openssl_sm2_key(out / "subscriber-sign-key.pem")
    written.append("subscriber-sign-key.pem")

    serial = secrets.randbits(63)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    not_after = now + dt.timedelta(days=365)
    ca_name = subject_name((("country_name", "CN"), ("common_name", "RA Centre Demo CA")))
    delivery = kmc.escrow.escrow_new_key(ca_id="demo", ca_name="CN=RA Centre Demo CA", user_cert_no=serial,
                                         subscriber_public_key_info=sub_spki, not_before=now, not_after=not_after,
                                         recipient=Party(ca_name, serial), user_name="演示公务员", actor="demo")
    check = verify_signed_and_enveloped(delivery.signed_and_enveloped, kmc.escrow.public_key_info,
                                        kmc.escrow.certificate)
    if not check.ok:
        raise RuntimeError(f"the KMC's signed envelope does not verify: {check.reasons}")
    (out / "enc-envelope.der").write_bytes(delivery.enveloped_key)
    (out / "enc-envelope-signed.der").write_bytes(delivery.signed_and_enveloped)
    (out / "enc-public-key.pem").write_bytes(pem.armor("PUBLIC KEY", delivery.public_key_info))
    (out / "kmc.pem").write_bytes(pem.armor("CERTIFICATE", kmc.escrow.certificate))
    written += ["enc-envelope.der", "enc-envelope-signed.der", "enc-public-key.pem", "kmc.pem"]
    if issue_encryption_certificate is not None:
        cert = issue_encryption_certificate(delivery.public_key_info, serial, now, not_after)
        (out / "civil-servant-enc.pem").write_bytes(pem.armor("CERTIFICATE", cert))
        written.append("civil-servant-enc.pem")

    # 2-of-3 judicial recovery to a named recipient (an HSM-held demo recipient key + certificate)
    recipient_label = f"demo-recovery-recipient-{secrets.token_hex(4)}"
    km.generate_key_pair(recipient_label, "sm2")
    recipient_cert = self_signed_certificate(km, recipient_label, (("common_name", "Demo Court Recipient"),))
    # a court certificate no CA of ours issued: an administrator puts it on the recipient list first
    (out / "recovery-recipient.pem").write_bytes(pem.armor("CERTIFICATE", recipient_cert))
    book = ApprovalBook(kmc.book.db, dataclasses.replace(kmc.book.config, recipient_files=(
        str(out / "recovery-recipient.pem"),)), kmc.book.issuers)
    rid = book.request(purpose="recover", requested_by="demo-ra-admin", reason="demo court order",
                           key_id=delivery.key_id, recipient_certificate=recipient_cert, role="ra_admin")
    book.approve(rid, DEMO_OFFICERS[0])
    book.approve(rid, DEMO_OFFICERS[2])
    recovered = kmc.escrow.recover(book.authorise(rid, actor="demo-ra-admin"), actor="demo-ra-admin")
    (out / "recovered-envelope.der").write_bytes(recovered.enveloped_key)
    (out / "recovered-envelope-signed.der").write_bytes(recovered.signed_and_enveloped)
    written += ["recovered-envelope.der", "recovered-envelope-signed.der", "recovery-recipient.pem"]
    return written
