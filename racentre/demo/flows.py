"""The demo's flows through the REST API (``racentre.demo.client``), as staff, subscribers and
applications use it: RA + CA for each hierarchy, KMC escrow and 2-of-3 recovery, TSA, seals, trust
services; each writes its artefacts (listed in ``racentre.demo``)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import secrets
import subprocess
import zipfile
from pathlib import Path

from asn1crypto import cms, ocsp, pem, tsp, x509
from PIL import Image, ImageDraw

from access.auth import create_token
from gmt0014.messages import public_key_hash
from pkicore import algorithm
from pkicore.csr import build_csr
from store.db import transaction
from ra.id_numbers import id_check_character, org_code_check_character, uscc_check_character
from racentre.demo.client import Client, DemoError, Reply, multipart
from racentre.demo.samples import make_ofd, make_pdf

DISTID = "distid:1234567812345678"
STAFF = {"operator": "ra_operator", "officer-a": "ra_officer", "officer-b": "ra_officer", "applicant": "applicant",
         "admin": "ra_admin", "clerk": "api_client", "kro-1": "key_recovery_officer",
         "kro-2": "key_recovery_officer", "kro-3": "key_recovery_officer", "app": "application"}


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, check=True, capture_output=True).stdout


def _openssl_key_and_csr(key: Path, subject: str, kind: str) -> bytes:
    """A key made client-side by OpenSSL (SM2 or P-256, mode 0600) and its PEM CSR (SM2: SM3 with the
    default ID 1234567812345678, GB/T 35276)."""
    curve = "SM2" if kind == "sm2" else "P-256"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}", "-out", str(key))
    key.chmod(0o600)
    digest = ("-sm3", "-sigopt", DISTID) if kind == "sm2" else ("-sha256",)
    return _openssl("req", "-new", "-utf8", "-key", str(key), "-subj", subject, *digest)


def _der(pem_or_der: bytes) -> bytes:
    return pem.unarmor(pem_or_der)[2] if pem.detect(pem_or_der) else pem_or_der


def _write(out: Path, name: str, content: bytes, written: list[str], base: Path) -> None:
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    written.append(str(path.relative_to(base)))


# ---------------------------------------------------------------------------------------------- the demo
class Demo:
    def __init__(self, services, client: Client, out: Path):
        self.services = services
        self.client = client
        self.out = out
        self.tag = secrets.token_hex(3)
        self.written: list[str] = []
        self.tokens = {}
        with transaction(services.db) as session:
            for who, role in STAFF.items():
                self.tokens[who] = create_token(session, f"demo-{who}-{self.tag}", [role])
        self.principal = {who: f"demo-{who}-{self.tag}" for who in STAFF}

    def api(self, method: str, path: str, who: str | None = None, **kwargs) -> Reply:
        return self.client.call(method, path, self.tokens[who] if who else None, **kwargs)

    def write(self, name: str, content: bytes, sub: str = "") -> None:
        _write(self.out / sub if sub else self.out, name, content, self.written, self.out)

    # ------------------------------------------------------------------ RA
    def _carry_out(self, request_body: dict) -> dict:
        """Submit as the applicant, vet as the operator, approve as one or two officers (four-eyes)."""
        rid = self.api("POST", "/api/v1/ra/requests", "applicant", json_body=request_body, expect=201).json()["id"]
        return self._vet_and_approve(rid, "issued")

    def _vet_and_approve(self, rid: int, outcome: str) -> dict:
        vetted = self.api("POST", f"/api/v1/ra/requests/{rid}/vet", "operator",
                          json_body={"documents_checked": True, "note": "demo: documents seen"}).json()
        if vetted["state"] != "vetted":
            raise DemoError(f"request {rid} failed vetting: {vetted['checks']}")
        reply = self.api("POST", f"/api/v1/ra/requests/{rid}/approve", "officer-a").json()
        if reply["state"] == "vetted":       # the profile wants a second officer
            reply = self.api("POST", f"/api/v1/ra/requests/{rid}/approve", "officer-b").json()
        if reply["state"] != outcome:
            raise DemoError(f"request {rid} ended {reply['state']}, not {outcome}")
        return reply

    def _cert(self, rid: int, usage: str) -> bytes:
        return self.api("GET", f"/api/v1/ra/requests/{rid}/certificates/{usage}", "applicant").data

    def hierarchy(self, kind: str) -> dict:
        """Unit, civil-servant dual pair, server, a revoked server, CRL and OCSP for one hierarchy."""
        sub = "" if kind == "sm2" else "ecdsa"
        work = self.out / (sub or ".") / ".work"
        work.mkdir(parents=True, exist_ok=True)
        try:
            unit = self.api("POST", "/api/v1/ra/units", "operator", expect=201, json_body={
                "name": f"示范市数据资源局-{kind}-{self.tag}", "uscc": demo_uscc(),
                "legal_representative": "王五"}).json()
            result = {"unit_name": unit["name"], "unit": self._unit_certificate(kind, sub, unit)}
            result.update(self._dual_pair(kind, sub, unit["id"], work))
            revoked_pem = self._servers(kind, sub, unit["id"], work)
            self._ca_artefacts(sub, revoked_pem)
        finally:
            for leftover in work.iterdir():
                leftover.unlink()
            work.rmdir()
        return result

    def _unit_certificate(self, kind: str, sub: str, unit: dict) -> tuple[str, bytes, str]:
        """A unit certificate for a key generated in the HSM, CSR signed there (the unit seals with it)."""
        label = f"demo-unit-{kind}-{self.tag}"
        km = self.services.key_manager
        alg = algorithm("sm2-sm3" if kind == "sm2" else "ecdsa-sha256")
        spki = km.ensure_key_pair(label, alg.key_algorithm)
        csr = build_csr((("country_name", "CN"), ("common_name", unit["name"])), spki, alg,
                        lambda tbs: km.sign(label, tbs, alg.mechanism))
        done = self._carry_out({"type": "unit", "subject_id": unit["id"],
                                "csr": pem.armor("CERTIFICATE REQUEST", csr).decode()})
        cert = self._cert(done["id"], "sign")
        self.write("unit.pem", cert, sub)
        return label, _der(cert), alg.name

    def _dual_pair(self, kind: str, sub: str, unit_id: int, work: Path) -> dict:
        """A civil servant's signing + encryption pair; the subscriber makes its own signing key and CSR
        (OpenSSL, default SM2 ID). SM2: the KMC generates the encryption key; ECDSA: the subscriber's."""
        person = self.api("POST", "/api/v1/ra/civil-servants", "operator", expect=201, json_body={
            "name": "张三", "id_number": demo_id_number(), "unit_id": unit_id, "department": "办公室",
            "position": "科员"}).json()
        key = work / "subscriber-sign-key.pem"
        body = {"type": "civil-servant-dual", "subject_id": person["id"],
                "csr": _openssl_key_and_csr(key, "/CN=张三", kind).decode()}
        if kind != "sm2":
            enc_key = work / "enc.key"
            _openssl_key_and_csr(enc_key, "/CN=张三", kind)
            body["enc_public_key"] = base64.b64encode(
                _openssl("pkey", "-in", str(enc_key), "-pubout", "-outform", "DER")).decode()
        done = self._carry_out(body)
        self.write("civil-servant-sign.pem", self._cert(done["id"], "sign"), sub)
        self.write("civil-servant-enc.pem", self._cert(done["id"], "enc"), sub)
        if kind == "sm2":
            self.write("subscriber-sign-key.pem", key.read_bytes())
            (self.out / "subscriber-sign-key.pem").chmod(0o600)
        enc = next(c for c in done["certificates"] if c["usage"] == "enc")
        return {"dual_request": done["id"], "enc_serial": int(enc["serial"], 16), "enc_ca": enc["ca"]}

    def _servers(self, kind: str, sub: str, unit_id: int, work: Path) -> bytes:
        """A server certificate, and one more that the demo has revoked (returned, PEM)."""
        issued = {}
        for name in ("server", "revoked"):
            host = f"{name}-{kind}-{self.tag}.demo.gov.cn"
            server = self.api("POST", "/api/v1/ra/servers", "operator", expect=201, json_body={
                "host_name": host, "unit_id": unit_id, "dns_names": [host], "ip_addresses": []}).json()
            csr = _openssl_key_and_csr(work / f"{name}.key", f"/CN={host}", kind)
            done = self._carry_out({"type": "server", "subject_id": server["id"], "csr": csr.decode()})
            issued[name] = (done["id"], self._cert(done["id"], "sign"), csr)
        self.write("server.csr", issued["server"][2], sub)
        self.write("server.pem", issued["server"][1], sub)
        self._carry_out_revocation(issued["revoked"][0])
        self.write("revoked.pem", issued["revoked"][1], sub)
        return issued["revoked"][1]

    def _ca_artefacts(self, sub: str, revoked_pem: bytes) -> None:
        """The CA certificates, CRLs and an OCSP exchange about the revoked certificate, from the CA's
        public endpoints."""
        revoked = x509.Certificate.load(_der(revoked_pem))
        ca_name = next(n for n, info in self.services.ca.authorities().items()
                       if info.subject_der == revoked.issuer.dump())
        root_name = self.services.ca.authorities()[ca_name].parent
        issuing = _der(self.api("GET", f"/ca/{ca_name}/cert").data)
        self.write("issuing-ca.pem", pem.armor("CERTIFICATE", issuing), sub)
        self.write("root-ca.pem", pem.armor("CERTIFICATE", _der(self.api("GET", f"/ca/{root_name}/cert").data)), sub)
        self.write("crl.der", self.api("GET", f"/ca/{ca_name}/crl").data, sub)
        self.write("root-crl.der", self.api("GET", f"/ca/{root_name}/crl").data, sub)
        request = _ocsp_request(issuing, revoked.serial_number)
        self.write("ocsp-request.der", request, sub)
        response = self.api("POST", f"/ocsp/{ca_name}", data=request, content_type="application/ocsp-request").data
        status = ocsp.OCSPResponse.load(response)["response_bytes"]["response"].parsed
        if status["tbs_response_data"]["responses"][0]["cert_status"].name != "revoked":
            raise DemoError("OCSP does not report the revoked certificate as revoked")
        self.write("ocsp-response.der", response, sub)

    def _carry_out_revocation(self, request_id: int) -> None:
        rid = self.api("POST", f"/api/v1/ra/requests/{request_id}/revoke", "applicant", expect=201,
                       json_body={"reason": "key_compromise"}).json()["id"]
        self._vet_and_approve(rid, "revoked")

    # ------------------------------------------------------------------ KMC
    def key_escrow(self, sm2: dict) -> None:
        rid = sm2["dual_request"]
        self.write("enc-envelope-signed.der",
                   self.api("GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope", "applicant").data)
        self.write("enc-envelope.der", self.api(
            "GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope?format=sm2-enveloped-key", "applicant").data)
        self.write("kmc.pem", self.api("GET", "/kmc/v1/certificate").data)
        # judicial recovery: 2 of 3 key recovery officers, delivered only to a named recipient certificate
        # to the court: a unit whose own key (made by OpenSSL, not the centre) our CA certified through the
        # RA; the KMC envelopes recovered keys only to certificates of our CAs or its recipient list
        recipient_key = self.out / "recovery-recipient-key.pem"      # the court's own key, not the centre's
        court = self.api("POST", "/api/v1/ra/units", "operator", expect=201, json_body={
            "name": f"示范市中级人民法院-{self.tag}", "uscc": demo_uscc(), "legal_representative": "赵六"}).json()
        csr = _openssl_key_and_csr(recipient_key, f"/CN={court['name']}", "sm2")
        recipient_key.chmod(0o600)
        self.written.append(recipient_key.name)
        done = self._carry_out({"type": "unit", "subject_id": court["id"], "csr": csr.decode()})
        recipient = _der(self._cert(done["id"], "sign"))
        issuing = self.services.ca.authorities()[sm2["enc_ca"]].certificate
        ca_id = public_key_hash(x509.Certificate.load(issuing).public_key.dump()).hex()
        req = self.api("POST", "/kmc/v1/approval-requests", "admin", expect=201, json_body={
            "purpose": "recover", "reason": "demo: court order (2-of-3)", "ca_id": ca_id,
            "user_cert_no": str(sm2["enc_serial"]),
            "recipient_certificate": base64.b64encode(recipient).decode()}).json()
        for officer in ("kro-1", "kro-3"):
            self.api("POST", f"/kmc/v1/approval-requests/{req['id']}/approve", officer)
        delivered = self.api("POST", f"/kmc/v1/approval-requests/{req['id']}/recover", "admin").json()
        self.write("recovered-envelope.der", base64.b64decode(delivered["enveloped_key"]))
        self.write("recovered-envelope-signed.der", base64.b64decode(delivered["signed_and_enveloped"]))
        self.write("recovery-recipient.pem", pem.armor("CERTIFICATE", recipient))

    # ------------------------------------------------------------------ TSA
    def timestamps(self) -> None:
        data = "RA 中心时间戳演示 ".encode() + secrets.token_hex(16).encode()
        self.write("tsa-data.bin", data)
        for sub, path, digest in (("", "/tsa", "sm3"), ("ecdsa", "/tsa/ecdsa", "sha256")):
            query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
                "hash_algorithm": {"algorithm": digest}, "hashed_message": hashlib.new(digest, data).digest()},
                "nonce": secrets.randbits(63), "cert_req": True}).dump()
            reply = self.api("POST", path, data=query, content_type="application/timestamp-query").data
            if tsp.TimeStampResp.load(reply)["status"]["status"].native != "granted":
                raise DemoError(f"the TSA at {path} refused the demo query")
            self.write("tsq.der", query, sub)
            self.write("tsr.der", reply, sub)
            self.write("tsa.pem", self.api("GET", f"{path}/certificate").data, sub)

    # ------------------------------------------------------------------ seals
    def _make_seal(self, hierarchy: dict, name: str) -> dict:
        label, unit_cert, alg = hierarchy["unit"]
        body, ctype = multipart(
            {"unit": hierarchy["unit_name"], "name": name, "type": "official", "key_label": label,
             "algorithm": alg, "width_mm": "40", "height_mm": "40", "valid_days": "365",
             "users": self.principal["clerk"]},
            {"picture": ("seal.png", demo_picture()), "certificate": ("unit.der", unit_cert)})
        return self.api("POST", "/seal/seals", "admin", data=body, content_type=ctype, expect=201).json()

    def ecdsa_seal(self, ecdsa: dict) -> bytes:
        """``ecdsa/sealed.pdf``: a seal of the ECDSA unit key, timestamped by the ECDSA TSA unit (a seal is
        stamped by a unit of its key's family, seal.timestamps), so stock PAdES verifiers validate it with
        ``ecdsa/root-ca.pem`` alone."""
        seal = self._make_seal(ecdsa, "示范市数据资源局公章（ECDSA）")
        sealed = self.api("POST", f"/seal/seals/{seal['id']}/sign?page=1&x_mm=120&y_mm=40", "clerk",
                          data=make_pdf(1, title="RA Centre demo document, ECDSA seal"),
                          content_type="application/pdf").data
        self.write("sealed.pdf", sealed, "ecdsa")
        return sealed

    def seals(self, sm2: dict, ecdsa: dict | None = None) -> None:
        """The SM2 unit's seal on a PDF (twice) and an OFD; with ``ecdsa`` also ``ecdsa/sealed.pdf``; our
        verifier's reports on all of them."""
        seal = self._make_seal(sm2, "示范市数据资源局公章")
        self.seal_id = seal["id"]          # the console day (racentre.demo.walk) seals with it too
        self.write("seal.esl", self.api("GET", f"/seal/seals/{seal['id']}/esl", "admin").data)
        self.write("seal-maker.pem", pem.armor("CERTIFICATE", self.services.site.seal_maker().certificate))
        unsealed = make_pdf(2, title="RA Centre demo official document")
        self.write("unsealed.pdf", unsealed)
        once = self.api("POST", f"/seal/seals/{seal['id']}/sign?page=1&x_mm=120&y_mm=40", "clerk", data=unsealed,
                        content_type="application/pdf").data
        twice = self.api("POST", f"/seal/seals/{seal['id']}/sign?page=2&x_mm=30&y_mm=40", "clerk", data=once,
                         content_type="application/pdf").data
        self.write("sealed.pdf", twice)
        ofd = self.api("POST", f"/seal/seals/{seal['id']}/sign?page=1&x_mm=100&y_mm=150", "clerk",
                       data=make_ofd("RA Centre demo document 示范文档"), content_type="application/ofd").data
        self.write("sealed.ofd", ofd)
        reports = {}
        for name, doc, kind in (("sealed.pdf", twice, "application/pdf"), ("sealed.ofd", ofd, "application/ofd")):
            reports[name] = self.api("POST", "/seal/verify", "clerk", data=doc, content_type=kind).json()
        self.write("sealed-verify.json", json.dumps(reports, ensure_ascii=False, indent=2).encode())
        # our verifier on every sealed artefact (the seal itself too), with indications, and on a copy of the
        # sealed OFD whose page was changed after sealing (it must fail)
        esl = self.api("GET", f"/seal/seals/{seal['id']}/esl", "admin").data
        tampered = _tampered_ofd(ofd)
        documents = [("seal.esl", esl, "application/octet-stream"), ("sealed.pdf", twice, "application/pdf"),
                     ("sealed.ofd", ofd, "application/ofd"),
                     ("sealed.ofd, page changed after sealing", tampered, "application/ofd")]
        if ecdsa is not None:
            documents.append(("ecdsa/sealed.pdf", self.ecdsa_seal(ecdsa), "application/pdf"))
        summary = {}
        for name, doc, kind in documents:
            report = self.api("POST", "/seal/verify", "clerk", data=doc, content_type=kind).json()
            summary[name] = {"indication": report["indication"], "sub_indication": report["sub_indication"],
                             "seals": [{k: s[k] for k in ("indication", "sub_indication", "signature_intact",
                                                           "time_proven", "reasons", "warnings")}
                                       for s in report["seals"]], "report": report}
        self.write("verify-report.json", json.dumps(summary, ensure_ascii=False, indent=2).encode())


    # ------------------------------------------------------------------ trust services
    def trust(self) -> None:
        """An application signs with its HSM key; we verify; a civil servant logs in with its USB key (here
        OpenSSL over subscriber-sign-key.pem, SM2 with the default ID); the evidence record of the login."""
        app = self.principal["app"]
        key = self.api("POST", "/api/v1/trust/keys", "admin", expect=201, json_body={
            "application": app, "common_name": "示范市政务服务应用", "organization": "示范市数据资源局",
            "dns_names": ["app.demo.gov.test"]}).json()
        self.write("app.pem", self.api("GET", f"/api/v1/trust/keys/{key['id']}/certificate", "app").data, "trust")
        content = "示范市政务服务应用：办件回执 2026-12-07 编号 0001\n".encode()
        b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
        signed = self.api("POST", "/api/v1/trust/sign", "app", json_body={
            "data": b64(content), "key_id": key["id"], "signing_time": True, "timestamp": True}).json()
        p7s = base64.b64decode(signed["signature"])
        self.write("app-signed.p7s", p7s, "trust")
        detached = base64.b64decode(self.api("POST", "/api/v1/trust/sign", "app", json_body={
            "data": b64(content), "key_id": key["id"], "detached": True}).json()["signature"])
        self.write("app-signed-detached.p7s", detached, "trust")
        self.write("app-signed-content.bin", content, "trust")
        valid = self.api("POST", "/api/v1/trust/verify", "app", json_body={"signature": b64(p7s)}).json()
        altered = self.api("POST", "/api/v1/trust/verify", "app", json_body={
            "signature": b64(detached), "data": b64(content.replace("0001".encode(), "0002".encode()))}).json()
        if not valid["valid"] or altered["sub_indication"] != "HASH_FAILURE":
            raise DemoError(f"trust verification gave {valid['indication']} / {altered['sub_indication']}")
        self.write("verify-report.json", json.dumps({"trust/app-signed.p7s": valid,
                                                     "trust/app-signed-detached.p7s over altered content": altered},
                                                    ensure_ascii=False, indent=2).encode(), "trust")
        challenge = self.api("POST", "/api/v1/trust/login/challenges", "app", expect=201).json()
        self.write("login-challenge.json", json.dumps(challenge, ensure_ascii=False, indent=2).encode(), "trust")
        signature = _openssl("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", DISTID, "-inkey",
                             str(self.out / "subscriber-sign-key.pem"), data=challenge["to_sign"].encode("ascii"))
        answer = {"challenge_id": challenge["challenge_id"], "signature": b64(signature),
                  "certificate": (self.out / "civil-servant-sign.pem").read_text(), "evidence": True}
        result = self.api("POST", "/api/v1/trust/login", "app", json_body=answer).json()
        if not result["authenticated"]:
            raise DemoError(f"certificate login refused: {result['reason']}")
        self.write("login-result.json", json.dumps(result, ensure_ascii=False, indent=2).encode(), "trust")
        replay = self.api("POST", "/api/v1/trust/login", "app", json_body={**answer, "evidence": False}).json()
        self.write("login-replay.json", json.dumps(replay, ensure_ascii=False, indent=2).encode(), "trust")
        evidence = self.api("GET", f"/api/v1/trust/evidence/{result['evidence_id']}", "app").data
        self.write("evidence.der", evidence, "trust")
        signer_cert = cms.ContentInfo.load(evidence)["content"]["certificates"][0].chosen.dump()
        self.write("evidence-signer.pem", pem.armor("CERTIFICATE", signer_cert), "trust")
        # an envelope (GM/T 0010) from a civil servant's side to the application's own encryption key
        enc = self.api("POST", "/api/v1/trust/keys", "admin", expect=201, json_body={
            "application": app, "purpose": "encrypt", "common_name": "示范市政务服务应用"}).json()
        enc_pem = self.api("GET", f"/api/v1/trust/keys/{enc['id']}/certificate", "app").data
        self.write("app-enc.pem", pem.armor("CERTIFICATE", next(pem.unarmor(enc_pem, multiple=True))[2]), "trust")
        envelope = base64.b64decode(self.api("POST", "/api/v1/trust/envelopes/encrypt", "app", json_body={
            "data": b64(content), "recipients": [enc_pem.decode()]}).json()["envelope"])
        self.write("envelope.der", envelope, "trust")
        opened = base64.b64decode(self.api("POST", "/api/v1/trust/envelopes/decrypt", "app", json_body={
            "envelope": b64(envelope), "key_id": enc["id"]}).json()["data"])
        if opened != content:
            raise DemoError("the application's envelope did not open to its content")
        record = self.api("GET", f"/api/v1/trust/evidence/{result['evidence_id']}?format=json", "app").json()
        self.write("evidence.json", json.dumps(record, ensure_ascii=False, indent=2).encode(), "trust")


def demo_picture(size: int = 240) -> bytes:
    """A red round seal picture (transparent PNG)."""
    img = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((6, 6, size - 6, size - 6), outline=(220, 0, 0, 255), width=10)
    c = size / 2
    star = [(c + (size * 0.18 if i % 2 == 0 else size * 0.07)
             * math.cos(math.pi / 2 + i * math.pi / 5),
             c - (size * 0.18 if i % 2 == 0 else size * 0.07)
             * math.sin(math.pi / 2 + i * math.pi / 5)) for i in range(10)]
    d.polygon(star, fill=(220, 0, 0, 255))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _tampered_ofd(data: bytes) -> bytes:
    """The OFD with one word of its first page changed (a protected file): the demo's negative case."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename.endswith("Page_0/Content.xml"):
                content = content.replace(b"demo", b"DEMO", 1)
            z.writestr(info.filename, content)
    return out.getvalue()


def _ocsp_request(issuer_der: bytes, serial: int) -> bytes:
    issuer = x509.Certificate.load(issuer_der)
    return ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": hashlib.sha1(issuer.subject.dump()).digest(),
        "issuer_key_hash": hashlib.sha1(issuer.public_key["public_key"].contents[1:]).digest(),
        "serial_number": serial}}],
        "request_extensions": [{"extn_id": "nonce", "critical": False, "extn_value": secrets.token_bytes(16)}]}}).dump()


def demo_id_number() -> str:
    """A GB 11643 citizen number (born 1980-1989, random sequence) with its check character."""
    first17 = (f"330106198{secrets.randbelow(10)}0{secrets.randbelow(9) + 1}1{secrets.randbelow(9)}"
               f"{secrets.randbelow(900) + 100}")
    return first17 + id_check_character(first17)


def demo_uscc() -> str:
    """A GB 32100 unified social credit code over a random GB 11714 organization code."""
    org8 = "".join(secrets.choice("0123456789") for _ in range(8))
    first17 = "11330100" + org8 + org_code_check_character(org8)
    return first17 + uscc_check_character(first17)
