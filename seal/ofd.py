"""OFD (GB/T 33190) sealing and verification the GB/T 38540 way: Signatures.xml lists each Signature.xml,
whose References carry base64(SM3(file)) CheckValues over every protected file; SignedValue.dat is an
SES_Signature v4 with dataHash = SM3(Signature.xml bytes) and propertyInfo = the absolute path of
Signature.xml; the seal picture is placed by a StampAnnot (GB/T 33190 §18.2).

Packages are read defensively: size, entry-count and compression-ratio limits (zip bombs), unsafe names
(absolute, ``..``, backslashes, control characters), duplicate names and encrypted entries are refused
with a BadDocument, never an exception from zipfile.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from asn1crypto import cms, core
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as defused_et

from pkicore.cms import GM_SIGNED_DATA, ID_SIGNED_DATA, verify_signed_data
from pkicore.oids import OID
from pkicore.sm2 import sm3
from pkicore.validation import Finding, SubIndication, failed, indeterminate, validate_certificate
from seal import ses
from seal.errors import BadDocument
from seal.report import DocumentReport, SealVerdict, combine, unreadable
from seal.validation import SealPolicy, evaluate_signature

NS = "http://www.ofdspec.org/2016"
_Q = "{%s}" % NS
# GB/T 33190 names its namespace http://www.ofdspec.org/2016; Suwell (数科) and others write it without
# the year (REFERENCES §13). Both are read; elements are renamed to the 2016 form after parsing.
_OTHER_NAMESPACES = ("{http://www.ofdspec.org}", "{http://www.ofdspec.org/}")

MAX_PACKAGE = 64 * 1024 * 1024
MAX_ENTRIES = 2000
MAX_ENTRY = 64 * 1024 * 1024
MAX_TOTAL = 256 * 1024 * 1024
MAX_RATIO = 200                      # uncompressed / compressed, for entries above 1 MiB


# ------------------------------------------------------------------ safe package reading

@dataclass
class OfdPackage:
    """The files of an OFD package, by path without a leading slash, in archive order."""

    files: dict[str, bytes]

    def read(self, path: str) -> bytes:
        key = path.lstrip("/")
        if key not in self.files:
            raise BadDocument(f"OFD package lacks {path}")
        return self.files[key]


def _safe_name(name: str) -> str:
    if not name or len(name) > 512:
        raise BadDocument("OFD package has an empty or overlong entry name")
    if any(ord(c) < 0x20 or c in "\\:" for c in name) or name.startswith("/"):
        raise BadDocument(f"OFD package entry name not allowed: {name!r}")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadDocument(f"OFD package entry name not allowed: {name!r}")
    return name


def read_package(data: bytes) -> OfdPackage:
    """Read an OFD zip safely (limits above); BadDocument with the reason when it is refused."""
    if len(data) > MAX_PACKAGE:
        raise BadDocument(f"OFD package larger than {MAX_PACKAGE} bytes")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise BadDocument(f"not a readable OFD (zip) package: {exc}") from exc
    if len(infos) > MAX_ENTRIES:
        raise BadDocument(f"OFD package has more than {MAX_ENTRIES} entries")
    files: dict[str, bytes] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = _safe_name(info.filename)
        folded = name.rstrip("/").casefold()
        if folded in seen:
            raise BadDocument(f"OFD package has a duplicate entry {name!r}")
        seen.add(folded)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise BadDocument(f"OFD package entry {name!r} is encrypted")
        if info.file_size > MAX_ENTRY or total + info.file_size > MAX_TOTAL:
            raise BadDocument("OFD package expands beyond the size limit (zip bomb?)")
        if info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise BadDocument(f"OFD package entry {name!r} compresses suspiciously well (zip bomb?)")
        try:
            with zf.open(info) as fh:           # never trust the declared size: read at most size + 1
                content = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, ValueError, OSError, EOFError,
                RuntimeError) as exc:
            raise BadDocument(f"OFD package entry {name!r} unreadable: {exc}") from exc
        if len(content) != info.file_size:
            raise BadDocument(f"OFD package entry {name!r} size differs from its header")
        total += len(content)
        files[name] = content
    if "OFD.xml" not in files:
        raise BadDocument("not an OFD package: OFD.xml missing")
    return OfdPackage(files)


def write_package(pkg: OfdPackage) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in pkg.files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content,
                        compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def parse_xml(data: bytes, what: str) -> ET.Element:
    """Parse one XML part with defusedxml: no DTD at all (so no entity expansion, no external
    entities), the result an ElementTree element."""
    try:
        root = defused_et.fromstring(data, forbid_dtd=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise BadDocument(f"{what}: DTDs and entities are not allowed") from exc
    except ET.ParseError as exc:
        raise BadDocument(f"{what} is not well-formed XML: {exc}") from exc
    for el in root.iter():
        tag = el.tag
        if isinstance(tag, str) and tag.startswith(_OTHER_NAMESPACES):
            el.tag = _Q + tag.split("}", 1)[1]
    return root


def _resolve(base_dir: str, loc: str) -> str:
    """An OFD location (absolute from the package root, or relative to ``base_dir``) -> package path."""
    loc = loc.strip()
    path = posixpath.normpath(loc.lstrip("/") if loc.startswith("/") else posixpath.join(base_dir, loc))
    if path.startswith("..") or path.startswith("/"):
        raise BadDocument(f"location {loc!r} leaves the package")
    return path


# ------------------------------------------------------------------ the document structure

@dataclass(frozen=True)
class DocPaths:
    doc_root: str                     # e.g. Doc_0/Document.xml
    signatures: str | None            # e.g. Doc_0/Signs/Signatures.xml
    first_page_id: str


def doc_paths(pkg: OfdPackage) -> DocPaths:
    root = parse_xml(pkg.read("OFD.xml"), "OFD.xml")
    body = root.find(f"{_Q}DocBody")
    doc_root = body.findtext(f"{_Q}DocRoot") if body is not None else None
    if not doc_root:
        raise BadDocument("OFD.xml names no DocRoot")
    doc_root_path = _resolve("", doc_root)
    sigs = body.findtext(f"{_Q}Signatures")
    doc = parse_xml(pkg.read(doc_root_path), doc_root_path)
    page = doc.find(f"{_Q}Pages/{_Q}Page")
    if page is None or not page.get("ID"):
        raise BadDocument("the OFD document has no page")
    return DocPaths(doc_root_path, _resolve("", sigs) if sigs else None, page.get("ID"))


# ------------------------------------------------------------------ sealing

@dataclass(frozen=True)
class StampPlace:
    """Where the seal picture goes: page index (0-based) and the top-left corner in mm."""

    page: int = 0
    x_mm: float = 120.0
    y_mm: float = 200.0


def _checkvalue(content: bytes) -> str:
    return base64.b64encode(sm3(content)).decode()


def seal_ofd(data: bytes, *, seal_der: bytes, signer_cert: bytes, sign: Callable[[bytes], bytes], alg,
             place: StampPlace = StampPlace(), timestamp: Callable[[bytes], bytes] | None = None,
             now: dt.datetime | None = None, provider: str = "RA Centre", protect_signature_list: bool = False) -> bytes:
    """Seal an OFD package: a new Sign_N with Signature.xml + SignedValue.dat, listed in Signatures.xml.
    ``protect_signature_list``: also cover Signatures.xml (as some producers do, e.g. KingGrid; a later seal
    then necessarily changes it, which verifiers must expect)."""
    pkg = read_package(data)
    files = dict(pkg.files)
    paths = doc_paths(pkg)
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    doc_dir = posixpath.dirname(paths.doc_root)
    sigs_path = paths.signatures
    if sigs_path is None:
        sigs_path = posixpath.join(doc_dir, "Signs", "Signatures.xml")
        ofd_xml = files["OFD.xml"].decode("utf-8")
        m = re.search(r"</([A-Za-z_][\w.-]*:)?DocRoot>", ofd_xml)
        if not m:
            raise BadDocument("OFD.xml: cannot place the Signatures entry")
        prefix = m.group(1) or ""
        ofd_xml = ofd_xml[:m.end()] + f"<{prefix}Signatures>{escape(sigs_path)}</{prefix}Signatures>" + ofd_xml[m.end():]
        files["OFD.xml"] = ofd_xml.encode("utf-8")
    sigs_dir = posixpath.dirname(sigs_path)
    existing = []
    max_id = 0
    if sigs_path in files:
        root = parse_xml(files[sigs_path], sigs_path)
        for s in root.findall(f"{_Q}Signature"):
            existing.append((s.get("ID"), s.get("Type"), s.get("BaseLoc")))
            try:
                max_id = max(max_id, int(s.get("ID", "0")))
            except ValueError:
                pass
        try:
            max_id = max(max_id, int(root.findtext(f"{_Q}MaxSignId") or 0))
        except ValueError:
            pass
    n = 0
    while posixpath.join(sigs_dir, f"Sign_{n}/Signature.xml") in files:
        n += 1
    sign_dir = posixpath.join(sigs_dir, f"Sign_{n}")
    sig_xml_path = f"{sign_dir}/Signature.xml"
    value_path = f"{sign_dir}/SignedValue.dat"
    new_id = max_id + 1

    entries = "".join(f'<ofd:Signature ID={quoteattr(i or "")}'
                      + (f" Type={quoteattr(t)}" if t else "") + f' BaseLoc={quoteattr(b or "")}/>'
                      for i, t, b in existing)
    entries += f'<ofd:Signature ID="{new_id}" Type="Seal" BaseLoc="/{escape(sig_xml_path)}"/>'
    files[sigs_path] = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Signatures xmlns:ofd="{NS}">'
                        f"<ofd:MaxSignId>{new_id}</ofd:MaxSignId>{entries}</ofd:Signatures>").encode("utf-8")
    # references: every file except Signatures.xml (later seals add to it) and this signature's own files
    refs = [(f"/{name}", _checkvalue(content)) for name, content in files.items()
            if (name != sigs_path or protect_signature_list) and not name.startswith(sign_dir + "/")]
    page_ids = _page_ids(pkg, paths)
    if not 0 <= place.page < len(page_ids):
        raise BadDocument(f"the document has no page {place.page + 1}")
    view = ses.parse_seal(seal_der)
    boundary = f"{place.x_mm:.2f} {place.y_mm:.2f} {view.width_mm:.2f} {view.height_mm:.2f}"
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n',
             f'<ofd:Signature xmlns:ofd="{NS}"><ofd:SignedInfo>',
             f'<ofd:Provider ProviderName={quoteattr(provider)} Version="1.0" Company={quoteattr(provider)}/>',
             f"<ofd:SignatureMethod>{OID.SM2_WITH_SM3 if alg.key_type == 'sm2' else alg.oid}</ofd:SignatureMethod>",
             f"<ofd:SignatureDateTime>{now:%Y%m%d%H%M%S}</ofd:SignatureDateTime>",
             f'<ofd:References CheckMethod="{OID.SM3}">']
    parts += [f"<ofd:Reference FileRef={quoteattr(p)}><ofd:CheckValue>{v}</ofd:CheckValue></ofd:Reference>"
              for p, v in refs]
    parts += ["</ofd:References>",
              f'<ofd:StampAnnot ID="1" PageRef="{escape(page_ids[place.page])}" Boundary="{boundary}"/>',
              "</ofd:SignedInfo>",
              f"<ofd:SignedValue>/{escape(value_path)}</ofd:SignedValue></ofd:Signature>"]
    sig_xml = "".join(parts).encode("utf-8")
    signed_value = ses.sign_document(seal_der, data=sig_xml, property_info=f"/{sig_xml_path}",
                                     signer_cert=signer_cert, sign=sign, alg=alg, time_info=now, timestamp=timestamp)
    files[sig_xml_path] = sig_xml
    files[value_path] = signed_value
    return write_package(OfdPackage(files))


def page_contents(data: bytes) -> list[tuple[int, ET.Element]]:
    """(page index, parsed Content.xml) of every page of the first document (for anchored seals)."""
    pkg = read_package(data)
    paths = doc_paths(pkg)
    doc = parse_xml(pkg.read(paths.doc_root), paths.doc_root)
    doc_dir = posixpath.dirname(paths.doc_root)
    out = []
    for i, page in enumerate(doc.findall(f"{_Q}Pages/{_Q}Page")):
        loc = page.get("BaseLoc")
        if loc:
            path = _resolve(doc_dir, loc)
            if path in pkg.files:
                out.append((i, parse_xml(pkg.read(path), path)))
    return out


def _page_ids(pkg: OfdPackage, paths: DocPaths) -> list[str]:
    doc = parse_xml(pkg.read(paths.doc_root), paths.doc_root)
    return [p.get("ID") for p in doc.findall(f"{_Q}Pages/{_Q}Page") if p.get("ID")]


# ------------------------------------------------------------------ verification

_CHECK_METHODS = {OID.SM3: sm3, "sm3": sm3, "SM3": sm3,
                  "2.16.840.1.101.3.4.2.1": lambda d: hashlib.sha256(d).digest()}
# SignedValue.dat of a Type="Sign" signature (GM/T 0099-2020 §7.2.2 b): GB/T 35275 SignedData
_SIGNED_DATA_TYPES = {ID_SIGNED_DATA, GM_SIGNED_DATA}


def verify_ofd(data: bytes, policy: SealPolicy = SealPolicy(), *, at: dt.datetime | None = None) -> DocumentReport:
    """Check every signature of an OFD package (GB/T 38540 §8.3, GM/T 0099 §7) under ``policy``: each
    referenced file's CheckValue, then a seal's SES_Signature (seal.validation) or a plain signature's
    GB/T 35275 SignedData, the signer's and seal maker's certificates at the proven signing time."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        pkg = read_package(data)
        paths = doc_paths(pkg)
    except BadDocument as exc:
        return unreadable("ofd", exc.public_message, digest)
    if paths.signatures is None or paths.signatures not in pkg.files:
        return combine("ofd", [], [], digest)
    try:
        root = parse_xml(pkg.files[paths.signatures], paths.signatures)
    except BadDocument as exc:
        return unreadable("ofd", exc.public_message, digest)
    sigs_dir = posixpath.dirname(paths.signatures)
    entries = root.findall(f"{_Q}Signature")
    sign_dirs = []
    for e in entries:
        try:
            sign_dirs.append(posixpath.dirname(_resolve(sigs_dir, e.get("BaseLoc") or "")))
        except BadDocument:
            sign_dirs.append(None)
    verdicts = []
    for i, entry in enumerate(entries):
        later = {d for d in sign_dirs[i:] if d}
        verdicts.append(_verify_one(pkg, paths, i, entry, sigs_dir, later, i < len(entries) - 1, policy, at))
    return combine("ofd", verdicts, [], digest)


def _check_references(pkg: OfdPackage, paths: DocPaths, refs_el: ET.Element, sig_dir: str, own_and_later: set[str],
                      later_seals: bool) -> tuple[list[Finding], list[str], set[str]]:
    """The References (GB/T 33190 §18.2.2): every listed file's CheckValue, and which files no reference
    covers. OFD.xml and Signatures.xml must change when a seal is added, so a seal never covers them
    reliably (REFERENCES §13): a mismatch there after later seals is expected, and their absence is normal.
    Files left unprotected are warnings (templates, attachments); the document's own root (Document.xml)
    left unprotected means the seal does not cover what is shown."""
    findings: list[Finding] = []
    warnings: list[str] = []
    method = (refs_el.get("CheckMethod") or OID.SM3).strip()
    hasher = _CHECK_METHODS.get(method)
    protected: set[str] = set()
    rewritten = {"OFD.xml", paths.signatures}
    if hasher is None:
        findings.append(indeterminate(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, f"unsupported CheckMethod {method}"))
        return findings, warnings, protected
    for ref in refs_el.findall(f"{_Q}Reference"):
        loc = ref.get("FileRef") or ""
        try:
            path = _resolve(sig_dir, loc)
        except BadDocument as exc:
            findings.append(failed(SubIndication.FORMAT_FAILURE, exc.public_message))
            continue
        protected.add(path)
        content = pkg.files.get(path)
        if content is None:
            findings.append(indeterminate(SubIndication.SIGNED_DATA_NOT_FOUND, f"protected file {loc} is missing"))
            continue
        try:
            want = base64.b64decode((ref.findtext(f"{_Q}CheckValue") or "").strip(), validate=True)
        except ValueError:
            findings.append(failed(SubIndication.FORMAT_FAILURE, f"CheckValue of {loc} is not base64"))
            continue
        if hasher(content) != want:
            if path in rewritten and later_seals:
                warnings.append(f"{loc} changed since this seal: later seals were added, which rewrite it")
            else:
                findings.append(failed(SubIndication.HASH_FAILURE, f"protected file {loc} was changed after sealing"))
    if paths.doc_root not in protected:
        findings.append(indeterminate(SubIndication.SIGNED_DATA_NOT_FOUND,
                                      f"the document shown (/{paths.doc_root}) is not protected by this seal"))
    loose = [p for p in pkg.files if p not in protected and p not in rewritten and p != paths.doc_root
             and not any(p.startswith(d + "/") for d in own_and_later)]
    if loose:
        shown = ", ".join(f"/{p}" for p in loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
        warnings.append(f"not protected by this seal: {shown}")
    return findings, warnings, protected


def _verify_one(pkg: OfdPackage, paths: DocPaths, index: int, entry: ET.Element, sigs_dir: str,
                own_and_later_dirs: set[str], later_seals: bool, policy: SealPolicy,
                at: dt.datetime | None) -> SealVerdict:
    name = entry.get("ID")
    sig_type = (entry.get("Type") or "Seal").strip()
    kind = "ofd-sign" if sig_type == "Sign" else "ofd-seal"
    try:
        sig_xml_path = _resolve(sigs_dir, entry.get("BaseLoc") or "")
        sig_xml = pkg.read(sig_xml_path)
        root = parse_xml(sig_xml, sig_xml_path)
    except BadDocument as exc:
        return SealVerdict(index, (indeterminate(SubIndication.SIGNED_DATA_NOT_FOUND, exc.public_message),),
                           kind=kind, name=name)
    if sig_type not in ("Seal", "Sign"):
        return SealVerdict(index, (indeterminate(SubIndication.FORMAT_FAILURE,
                                                 f"signature type {sig_type!r} is neither Seal nor Sign"),),
                           kind=kind, name=name)
    sig_dir = posixpath.dirname(sig_xml_path)
    info = root.find(f"{_Q}SignedInfo")
    refs_el = info.find(f"{_Q}References") if info is not None else None
    if refs_el is None:
        return SealVerdict(index, (failed(SubIndication.FORMAT_FAILURE, "Signature.xml has no References"),),
                           kind=kind, name=name)
    findings, warnings, protected = _check_references(pkg, paths, refs_el, sig_dir, own_and_later_dirs, later_seals)
    details = {"signature_xml": f"/{sig_xml_path}", "type": sig_type, "references": len(protected)}
    try:
        value = pkg.read(_resolve(sig_dir, root.findtext(f"{_Q}SignedValue") or ""))
    except BadDocument as exc:
        findings.append(indeterminate(SubIndication.SIGNED_DATA_NOT_FOUND, f"SignedValue: {exc.public_message}"))
        return SealVerdict(index, tuple(findings), tuple(warnings), kind=kind, name=name, details=details)
    if sig_type == "Sign":
        return _verify_sign(index, name, value, sig_xml, findings, warnings, details, policy, at)
    ev = evaluate_signature(value, policy, signed_data=sig_xml, at=at)
    findings += ev.findings
    warnings += ev.warnings
    view = ev.check.view if ev.check else None
    if view is not None:
        if view.property_info.lstrip("/") != sig_xml_path:
            findings.append(failed(SubIndication.FORMAT_FAILURE,
                                   f"propertyInfo {view.property_info!r} does not name /{sig_xml_path}"))
        elif not view.property_info.startswith("/"):
            warnings.append("propertyInfo is a relative path")
    details.update(ev.details())
    stamp = ev.timestamp
    return SealVerdict(
        index, tuple(findings), tuple(warnings), kind=kind, name=name, signature_intact=ev.intact,
        seal_name=view.seal.name if view else None, es_id=view.seal.es_id if view else None,
        signer=ev.check.signer_subject if ev.check else None,
        signing_time=view.time_info.isoformat() if view else None,
        timestamp_time=stamp.gen_time.isoformat() if stamp and stamp.gen_time else None,
        validation_time=ev.validation_time.isoformat() if ev.validation_time else None,
        time_proven=ev.time_proven, details=details)


def _signed_data_type(value: bytes) -> str | None:
    try:
        return cms.ContentInfo.load(value, strict=True)["content_type"].dotted
    except (ValueError, TypeError, KeyError):
        return None


def _bare_signature(value: bytes) -> bool:
    if len(value) == 64:
        return True
    try:
        seq = core.Sequence.load(value, strict=True)
        return len(seq) == 2 and all(isinstance(core.Integer.load(v.dump()), core.Integer) for v in seq)
    except (ValueError, TypeError):
        return False


def _verify_sign(index: int, name: str | None, value: bytes, sig_xml: bytes, findings: list[Finding],
                 warnings: list[str], details: dict, policy: SealPolicy, at: dt.datetime | None) -> SealVerdict:
    """A plain digital signature (Type="Sign", GM/T 0099-2020 §7.2.2 b): a GB/T 35275 SignedData whose
    content is SM3(Signature.xml) (ofdrw and GM/T 0099 producers) or Signature.xml itself, attached or
    detached. A bare SM2 signature names no signer certificate: it cannot be validated."""
    content_type = _signed_data_type(value)
    if content_type not in _SIGNED_DATA_TYPES:
        if _bare_signature(value):
            findings.append(indeterminate(SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                                          "a bare SM2 signature carries no signer certificate: not verifiable"))
        else:
            findings.append(failed(SubIndication.FORMAT_FAILURE, "the SignedValue of a Type=\"Sign\" signature is "
                                   "neither a GB/T 35275 SignedData nor an SM2 signature"))
        return SealVerdict(index, tuple(findings), tuple(warnings), kind="ofd-sign", name=name, details=details)
    result = verify_signed_data(value)
    if result.content is None:                     # detached: over Signature.xml
        result = verify_signed_data(value, content=sig_xml)
        covers = "Signature.xml (detached)"
    elif result.content == sm3(sig_xml):
        covers = "SM3(Signature.xml)"
    elif result.content == sig_xml:
        covers = "Signature.xml"
    else:
        covers = None
        findings.append(failed(SubIndication.HASH_FAILURE,
                               "the signed content is not this Signature.xml (document altered)"))
    intact = result.ok
    if not result.ok:
        findings.append(failed(SubIndication.SIG_CRYPTO_FAILURE, "signature invalid: " + "; ".join(result.reasons)))
    signer = None
    if result.signer_certificate is None:
        findings.append(indeterminate(SubIndication.NO_SIGNING_CERTIFICATE_FOUND, "signer certificate not found"))
    else:
        checked = validate_certificate(result.signer_certificate, policy.trust, at=at, proven=False, who="signer",
                                       extra_certs=result.certificates)
        findings += checked.findings
        warnings += checked.warnings
        signer = checked.subject
        details["signer_certificate"] = checked.as_dict()
    warnings.append("no timestamp: the signing time is the signer's claim only")
    details.update(covers=covers, algorithm=result.algorithm)
    return SealVerdict(index, tuple(findings), tuple(warnings), kind="ofd-sign", name=name, signature_intact=intact,
                       signer=signer, signing_time=result.signing_time.isoformat() if result.signing_time else None,
                       validation_time=(at or dt.datetime.now(dt.timezone.utc)).isoformat(), details=details)


def extract_signed_values(data: bytes) -> list[tuple[str, bytes]]:
    """(Signature.xml path, SignedValue.dat bytes) for every seal (interop checks, the CLI)."""
    pkg = read_package(data)
    paths = doc_paths(pkg)
    if not paths.signatures:
        return []
    root = parse_xml(pkg.read(paths.signatures), paths.signatures)
    out = []
    sigs_dir = posixpath.dirname(paths.signatures)
    for e in root.findall(f"{_Q}Signature"):
        p = _resolve(sigs_dir, e.get("BaseLoc") or "")
        sx = parse_xml(pkg.read(p), p)
        out.append((p, pkg.read(_resolve(posixpath.dirname(p), sx.findtext(f"{_Q}SignedValue") or ""))))
    return out
