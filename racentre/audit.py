"""The tamper-evident audit trail's HSM side: signed checkpoints, verification and the auditor export.

``audit.trail`` holds the tables, the per-writer hash chains and the canonical encoding; this module
adds what needs the HSM audit key (an SM2 key generated in the HSM on first use, label from
``[audit] key_label``), after REFERENCES.md §8:

* ``checkpoint(db, km)``: one ``audit_checkpoint`` row that signs (SM2 with SM3, GB/T 32918.2, default
  user ID) every chain's head (writer, seq, hash), the previous checkpoint's hash, the key's
  fingerprint and the site identity (``audit_site``). Anchored outside the database: its
  number and hash replace the site's HSM anchor (a private token data object, PKCS#11 v2.40 §4.5, by
  compare-and-set under a lock of the database), it carries an RFC 3161 token of our TSA over SM3 of the
  signed bytes, and it is written to an append-only sink (a file on another host, syslog). One at a time
  across workers and nodes (``store.db.named_lock``). ``racentre serve`` runs ``start_periodic_checkpoints``
  (every 60 s / 10,000 rows while the chains move), cron ``racentre audit checkpoint``; ``verify`` and
  ``export`` checkpoint too.
* ``verify(db, spki, km=...)``: recomputes every row hash and link, every checkpoint hash, link,
  signature and time-stamp token, checks each signed head against the chain and the checkpoints against
  the HSM anchor (and the sink file): a deleted checkpoint, a truncated tail, a deleted writer, a chain
  rewritten and re-hashed, a replaced site identity are each named. Every finding names the row (id, writer, seq) and what
  is wrong: modified, deleted (a seq gap or a signed head gone), inserted or reordered. Rows after the
  last checkpoint are reported as unanchored; ones dated well before it (``grace``) are flagged, since a
  legitimate row that old would have been covered. Result objects, not exceptions (STYLE §3).
* ``export_range``/``verify_export``: a JSON range for an external reviewer with the links (writer, seq,
  prev_hash, body digest, hash; no content) from the range to signed checkpoint heads, the covering
  checkpoints and the public key, plus a detached SM2 signature over the file's exact bytes.
  ``verify_export`` needs nothing of ours but pkicore: no HSM, no database.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import secrets
import syslog
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from asn1crypto import pem
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hsm import DataConflict, HsmError, KeyManager, KeyNotFound
from pkicore import algorithm, verify_signature
from audit.trail import (CHECKPOINT_GENESIS, HASH_ALGORITHM, AuditCheckpoint, AuditEvent, AuditSite, AuditWriter,
                           body_digest, canonical_json, canonical_time, chain_heads, checkpoint_tbs, heads_digest,
                           link_hash, record, row_hash, sm3_hex, writer_genesis)
from store.db import as_utc, named_lock, transaction, utcnow
from pkicore.errors import ErrorCode, PkiError
from timestamp.verify import verify_token

log = logging.getLogger(__name__)

DEFAULT_KEY_LABEL = "audit-signing"
EXPORT_FORMAT = "racentre-audit-export/1"
SM2_SM3 = algorithm("sm2-sm3")
DEFAULT_GRACE = dt.timedelta(minutes=10)
ANCHOR_PREFIX = "racentre-audit-anchor:"
ANCHOR_APPLICATION = "racentre.audit.anchor"
CHECKPOINT_LOCK = "audit-checkpoint"
SITE_LOCK = "audit-site"
_ROW_COLUMNS = ("id", "writer_id", "seq", "prev_hash", "hash", "at", "actor", "role", "action", "target_type",
                "target_id", "detail")


class AuditError(PkiError):
    code = ErrorCode.BAD_REQUEST


def key_fingerprint(spki: bytes) -> str:
    return sm3_hex(spki)


def ensure_audit_key(km: KeyManager, label: str = DEFAULT_KEY_LABEL) -> bytes:
    """SPKI DER of the audit key; the SM2 pair is made in the HSM (non-extractable) by ``racentre setup``,
    else on first use under the key manager's creation lock (one key for every node)."""
    return km.ensure_key_pair(label, "sm2")


def audit_public_key(km: KeyManager, label: str = DEFAULT_KEY_LABEL) -> bytes | None:
    try:
        return km.public_key_info(label)
    except KeyNotFound:
        return None


# ----------------------------------------------------------------------------- site identity
def site_id_of(session: Session) -> str | None:
    """The site's identity (``audit_site``); AuditError when the table holds more than one."""
    ids = list(session.scalars(select(AuditSite.site_id).limit(2)))
    if len(ids) > 1:
        raise AuditError("audit_site holds more than one site identity: the table was tampered with")
    return ids[0] if ids else None


def ensure_site(db: sessionmaker[Session]) -> str:
    """The site identity, made (128 random bits) when absent: by ``racentre setup``, else by the first
    checkpoint of a trail that has none. One maker at a time (a lock of the database)."""
    with db() as session:
        found = site_id_of(session)
    if found is not None:
        return found
    with named_lock(db.kw["bind"], SITE_LOCK):
        with transaction(db) as session:
            found = site_id_of(session)
            if found is None:
                found = secrets.token_hex(16)
                session.add(AuditSite(site_id=found, created_at=utcnow()))
                log.info("audit site identity %s created", found)
        return found


# ----------------------------------------------------------------------------- the HSM anchor
@dataclass(frozen=True)
class Anchor:
    """What the HSM keeps of a site's trail (a CKO_DATA object labelled ``racentre-audit-anchor:<site>``):
    the number and hash of the last checkpoint, and the digest and count of the chain heads it signs."""
    site_id: str
    seq: int
    hash: str
    heads_digest: str
    heads: int
    at: str

    def encode(self) -> bytes:
        return canonical_json({"v": 1, "site": self.site_id, "seq": self.seq, "hash": self.hash,
                               "heads_digest": self.heads_digest, "heads": self.heads, "at": self.at}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Anchor":
        try:
            d = json.loads(raw)
            return cls(str(d["site"]), int(d["seq"]), str(d["hash"]), str(d["heads_digest"]), int(d["heads"]),
                       str(d["at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"the HSM audit anchor is not readable ({type(exc).__name__})") from exc


def anchor_label(site_id: str) -> str:
    return ANCHOR_PREFIX + site_id


def read_anchor(km: KeyManager, site_id: str) -> tuple[Anchor | None, bytes | None]:
    """(anchor, raw value) of the site's HSM anchor; (None, None) when there is none. After an update cut
    short between creating the new object and destroying the old one (``KeyManager.compare_and_set_data``
    on a module whose data values are read-only), the newer of the two (the higher checkpoint number)."""
    values = km.read_data_values(anchor_label(site_id))
    if not values:
        return None, None
    anchors = sorted(((Anchor.decode(raw), raw) for raw in values), key=lambda pair: pair[0].seq)
    return anchors[-1]


class AuditTampered(AuditError):
    """The trail in the database disagrees with its HSM anchor: no checkpoint is signed over it."""
    code = ErrorCode.CONFLICT


def _anchor_findings(anchor: Anchor | None, site_id: str, cps: list[dict]) -> tuple[list[Problem], list[str]]:
    """Compare the HSM anchor with the checkpoints in the database: (problems, notes). The anchor may lag
    the database by one checkpoint (a crash between the commit and the anchor update), never lead it."""
    problems: list[Problem] = []
    notes: list[str] = []
    by_seq = {c["seq"]: c for c in cps}
    ours = sorted((c for c in cps if c.get("site_id") is not None), key=lambda c: c["seq"])
    top = max(by_seq) if by_seq else 0
    label = anchor_label(site_id)
    if anchor is None:
        if len(ours) > 1 or (ours and ours[-1]["seq"] != top):
            problems.append(Problem("anchor", f"the HSM holds no anchor {label!r}, but the database has "
                                    f"{len(ours)} checkpoints signed with a site identity: the anchor was deleted "
                                    "from the HSM or the site identity was replaced"))
        elif ours:
            notes.append(f"checkpoint #{ours[-1]['seq']} is not yet anchored in the HSM (its anchor update did "
                         "not happen); the next checkpoint anchors the trail")
        return problems, notes
    if anchor.site_id != site_id:
        problems.append(Problem("anchor", f"the HSM anchor {label!r} names site {anchor.site_id}: replaced"))
    cp = by_seq.get(anchor.seq)
    if anchor.seq > top:
        missing = f"#{anchor.seq}" if anchor.seq == top + 1 else f"#{top + 1}..#{anchor.seq}"
        problems.append(Problem("checkpoint", f"checkpoints {missing} are missing: the HSM anchor counter is at "
                                f"#{anchor.seq} (hash {anchor.hash[:16]}..., {anchor.heads} chain heads, "
                                f"{anchor.at}) but the database ends at #{top}: deleted (the tail of the trail "
                                "they covered may be gone with them)", checkpoint=anchor.seq))
    elif cp is None:
        problems.append(Problem("checkpoint", f"checkpoint #{anchor.seq}, the one anchored in the HSM, is missing "
                                "from the database: deleted", checkpoint=anchor.seq))
    elif cp["hash"] != anchor.hash:
        problems.append(Problem("checkpoint", f"checkpoint #{anchor.seq} is not the one anchored in the HSM (hash "
                                f"{cp['hash'][:16]}... there, {anchor.hash[:16]}... in the HSM): replaced",
                                checkpoint=anchor.seq))
    elif heads_digest(cp["heads"]) != anchor.heads_digest:
        problems.append(Problem("checkpoint", f"checkpoint #{anchor.seq}: its chain heads are not the ones "
                                "anchored in the HSM: replaced", checkpoint=anchor.seq))
    if top > anchor.seq + 1 and anchor.seq <= top:
        notes.append(f"the HSM anchor is at checkpoint #{anchor.seq}; #{anchor.seq + 2}..#{top} were signed "
                     "without updating it")
    elif top == anchor.seq + 1:
        notes.append(f"checkpoint #{top} is not yet anchored in the HSM; the next checkpoint anchors it")
    return problems, notes


# ----------------------------------------------------------------------------- the append-only sink
class CheckpointSink:
    """Each checkpoint as one JSON line to places a database administrator cannot rewrite: a file (meant
    to be on another host: an NFS/remote-logging mount, appended with O_APPEND and fsync'd) and/or syslog
    (facility authpriv, tag ``racentre-audit``; forwarded by the host's syslog daemon)."""

    def __init__(self, path: str | Path | None = None, use_syslog: bool = False):
        self.path = Path(path) if path else None
        self.use_syslog = use_syslog
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.path) or self.use_syslog

    def write(self, entry: dict) -> None:
        line = canonical_json(entry)
        with self._lock:
            if self.path is not None:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
                try:
                    os.write(fd, line.encode("utf-8") + b"\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if self.use_syslog:
                syslog.openlog("racentre-audit", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
                syslog.syslog(syslog.LOG_NOTICE, line)


def read_sink(path: str | Path) -> list[dict]:
    """The checkpoint lines of a sink file (lines that are not JSON objects are skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "seq" in entry:
            out.append(entry)
    return out


# ----------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class Checkpoint:
    seq: int
    at: dt.datetime
    hash: str
    heads: tuple[tuple[str, int, str], ...]
    site_id: str | None = None
    timestamped: bool = False
    anchored: bool = False

    def as_dict(self) -> dict:
        return {"seq": self.seq, "at": canonical_time(self.at), "hash": self.hash, "site_id": self.site_id,
                "timestamped": self.timestamped, "anchored": self.anchored,
                "heads": [list(h) for h in self.heads]}


# (previous checkpoint or None, heads, max audit_event id, now) -> sign now?
DuePredicate = Callable[["AuditCheckpoint | None", list, "int | None", dt.datetime], bool]
# SM3 digest of the signed bytes -> RFC 3161 TimeStampToken DER
Stamper = Callable[[bytes], bytes]


def _cp_dict(c: AuditCheckpoint) -> dict:
    return {"seq": c.seq, "at": c.at, "prev_hash": c.prev_hash, "key_fingerprint": c.key_fingerprint,
            "heads": c.heads, "signature": c.signature, "hash": c.hash, "site_id": c.site_id,
            "tsa_token": c.tsa_token}


def checkpoint(db: sessionmaker[Session], km: KeyManager, *, key_label: str = DEFAULT_KEY_LABEL,
               anchor: bool = True, stamp: Stamper | None = None, sink: CheckpointSink | None = None,
               due: DuePredicate | None = None) -> Checkpoint | None:
    """Sign every chain's current head (and the previous checkpoint) with the HSM audit key.

    ``anchor``: the checkpoint is bound to the site (``ensure_site``) and, once committed, its number and
    hash replace the site's HSM anchor by compare-and-set; AuditTampered (nothing signed) when the
    database's checkpoints disagree with the anchor. ``stamp``: an RFC 3161 token over SM3 of the signed
    bytes is kept with it (a TSA failure is logged, never blocks the checkpoint). ``sink``: the checkpoint
    is also written there. ``due``: asked under the lock; None (skip) unless it says to sign.
    Several workers and nodes: one checkpoint at a time (a lock of the database), each reading the state
    the previous one committed."""
    spki = ensure_audit_key(km, key_label)
    fingerprint = key_fingerprint(spki)
    site = ensure_site(db) if anchor else None
    with named_lock(db.kw["bind"], CHECKPOINT_LOCK):
        # read, then sign and time-stamp with no transaction open (the TSA may write its archive), then
        # write: checkpoints are made only under this lock, so number and predecessor cannot move meanwhile
        with db() as session:
            if anchor:
                current = site_id_of(session)
                if current != site:
                    raise AuditTampered(f"the site identity changed while checkpointing ({site} -> {current})")
            prev = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))
            heads = [h.as_list() for h in chain_heads(session)]
            max_id = session.scalar(select(func.max(AuditEvent.id)))
            at = utcnow()
            if due is not None and not due(prev, heads, max_id, at):
                return None
            raw = None
            if anchor:
                held, raw = read_anchor(km, site)
                problems, _notes = _anchor_findings(held, site, _anchor_relevant(session, prev, held))
                if problems:
                    raise AuditTampered("refusing to checkpoint: " + "; ".join(p.message for p in problems))
            seq = prev.seq + 1 if prev else 1
            prev_hash = prev.hash if prev else CHECKPOINT_GENESIS
        tbs = checkpoint_tbs(seq, at, prev_hash, fingerprint, heads, site)
        digest = sm3_hex(tbs)
        signature = km.sign(key_label, tbs)
        token = None
        if stamp is not None:
            try:
                token = base64.b64encode(stamp(bytes.fromhex(digest))).decode("ascii")
            except Exception as exc:  # noqa: BLE001 - the signature and the anchor still hold without it
                log.warning("audit checkpoint #%d: not time-stamped (%s)", seq, exc)
        with transaction(db) as session:
            session.add(AuditCheckpoint(seq=seq, at=at, prev_hash=prev_hash, heads=heads, key_label=key_label,
                                        key_fingerprint=fingerprint, signature=signature.hex(), hash=digest,
                                        site_id=site, tsa_token=token, last_event_id=max_id))
        anchored = False
        if anchor:
            new = Anchor(site, seq, digest, heads_digest(heads), len(heads), canonical_time(at))
            try:
                km.compare_and_set_data(anchor_label(site), raw, new.encode(), application=ANCHOR_APPLICATION)
                anchored = True
            except DataConflict as exc:
                log.error("audit checkpoint #%d: the HSM anchor changed behind the lock; not anchored", seq)
                raise AuditTampered(f"checkpoint #{seq} signed, but the HSM anchor was changed by someone "
                                    "not holding the checkpoint lock") from exc
    if sink:
        try:
            sink.write({"site": site, "seq": seq, "at": canonical_time(at), "hash": digest, "prev_hash": prev_hash,
                        "heads_digest": heads_digest(heads), "heads": len(heads), "signature": signature.hex(),
                        "key_fingerprint": fingerprint, "tsa_token": token})
        except OSError as exc:
            log.error("audit checkpoint #%d: the append-only sink could not be written: %s", seq, exc)
    log.info("audit checkpoint #%d over %d chains%s", seq, len(heads), " (anchored)" if anchored else "")
    return Checkpoint(seq, at, digest, tuple(tuple(h) for h in heads), site, token is not None, anchored)


def _anchor_relevant(session: Session, top: AuditCheckpoint | None, held: Anchor | None) -> list[dict]:
    """The checkpoints ``_anchor_findings`` looks at (not the whole table, which grows every minute): the
    newest, the anchored one, and the two newest bound to a site."""
    found = {} if top is None else {top.seq: top}
    if held is not None:
        cp = session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.seq == held.seq))
        if cp is not None:
            found[cp.seq] = cp
    for cp in session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.site_id.is_not(None))
                              .order_by(AuditCheckpoint.seq.desc()).limit(2)):
        found[cp.seq] = cp
    return [_cp_dict(c) for c in found.values()]


def periodic_due(interval: float, rows: int) -> DuePredicate:
    """Sign when there is no checkpoint yet, or when the heads moved and ``interval`` seconds passed or
    ``rows`` rows were written since the last one."""
    def due(prev, heads, max_id, now) -> bool:
        if prev is None:
            return True
        if sorted(map(list, heads)) == sorted(map(list, prev.heads)):
            return False
        if interval > 0 and (now - as_utc(prev.at)).total_seconds() >= interval:
            return True
        return rows > 0 and (max_id or 0) - (prev.last_event_id or 0) >= rows
    return due


@dataclass
class Checkpointer:
    """How a site checkpoints (``[audit]``): its key, HSM anchor, TSA and sink."""
    db: sessionmaker[Session]
    km: KeyManager
    key_label: str = DEFAULT_KEY_LABEL
    anchor: bool = True
    stamp: Stamper | None = None
    sink: CheckpointSink | None = None
    interval: float = 60
    rows: int = 10_000

    def checkpoint(self, due: DuePredicate | None = None) -> Checkpoint | None:
        return checkpoint(self.db, self.km, key_label=self.key_label, anchor=self.anchor, stamp=self.stamp,
                          sink=self.sink, due=due)

    def tick(self) -> Checkpoint | None:
        """One look of the periodic loop: a cheap test without the lock, the real one under it."""
        with self.db() as session:
            prev = session.execute(select(AuditCheckpoint.at, AuditCheckpoint.last_event_id)
                                   .order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
            max_id = session.scalar(select(func.max(AuditEvent.id)))
        if prev is not None:
            waited = (utcnow() - as_utc(prev.at)).total_seconds()
            grown = (max_id or 0) - (prev.last_event_id or 0)
            if not ((waited >= self.interval > 0) or (grown >= self.rows > 0)):
                return None
        return self.checkpoint(periodic_due(self.interval, self.rows))


def site_checkpointer(services, config=None) -> Checkpointer:
    """The ``Checkpointer`` of a site from its ``[audit]`` settings (``config``: default the services'); TSA
    tokens from the site's own TSA (``[audit] timestamp``)."""
    config = (config or services.config).audit
    stamp = None
    if config.timestamp:
        def stamp(digest: bytes) -> bytes:
            return services.tsa.authority.stamp_digest("sm3", digest)
    return Checkpointer(services.db, services.key_manager, key_label=config.key_label, anchor=config.anchor,
                        stamp=stamp, sink=CheckpointSink(config.sink_file or None, config.sink_syslog),
                        interval=config.checkpoint_interval, rows=config.checkpoint_rows)


def start_periodic_checkpoints(checkpointer: Checkpointer, poll: float | None = None) -> threading.Event:
    """The service hook: a daemon thread that looks every ``poll`` seconds (default: the interval, at most
    5 s) whether a checkpoint is due (``periodic_due``) until the returned event is set. Every worker of
    every node runs one; the lock and the test under it make one of them sign. Failures are logged and
    retried at the next look."""
    stop = threading.Event()
    limits = [x for x in (checkpointer.interval, 5.0) if x > 0]
    wait = poll if poll is not None else min(limits)

    def loop():
        while not stop.wait(wait):
            try:
                checkpointer.tick()
            except Exception:  # noqa: BLE001 - a timer must survive a transient HSM/database failure
                log.exception("periodic audit checkpoint failed")

    threading.Thread(target=loop, name="audit-checkpoint", daemon=True).start()
    return stop


# ----------------------------------------------------------------------------- verification results
@dataclass(frozen=True)
class Problem:
    """One finding; ``row_id``/``writer``/``seq`` name the audit row, ``checkpoint`` the checkpoint."""
    kind: str              # modified | deleted | inserted | reordered | broken-link | checkpoint | signature | ...
    message: str
    row_id: int | None = None
    writer: str | None = None
    seq: int | None = None
    checkpoint: int | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    writers: int
    checkpoints: int
    unanchored: int                      # rows after the last checkpoint (chained, not yet signed)
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    fingerprint: str | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "writers": self.writers, "checkpoints": self.checkpoints,
                "unanchored_rows": self.unanchored, "key_fingerprint": self.fingerprint,
                "problems": [p.as_dict() for p in self.problems], "notes": list(self.notes)}


def _where(row_id, writer, seq) -> str:
    return f"row id {row_id} ({writer}#{seq})" if row_id is not None else f"row {writer}#{seq}"


class _CheckpointState:
    """Checks the checkpoint chain and signatures; remembers which (writer, seq) each one signed."""

    def __init__(self, spki: bytes | None, problems: list[Problem], site_id: str | None = None,
                 check_token: Callable[[str, bytes], str | None] | None = None):
        self.spki, self.problems = spki, problems
        self.site_id, self.check_token, self.seen_v2 = site_id, check_token, False
        self.valid: set[int] = set()       # checkpoints whose hash and signature verify
        self.fingerprint = key_fingerprint(spki) if spki else None
        self.signed: dict[tuple[str, int], list[tuple[int, str]]] = {}
        self.last: dict | None = None
        self.count = 0

    def check(self, cps: list[dict]) -> None:
        prev_hash, expected, prev_heads = CHECKPOINT_GENESIS, 1, {}
        for cp in sorted(cps, key=lambda c: c["seq"]):
            self.count += 1
            n = cp["seq"]
            tbs = checkpoint_tbs(n, cp["at"], cp["prev_hash"], cp["key_fingerprint"], cp["heads"], cp.get("site_id"))
            if self.site_id is not None and cp.get("site_id") not in (None, self.site_id):
                self.problems.append(Problem("site", f"checkpoint #{n} was signed for site {cp['site_id']}, but the "
                                             f"database names site {self.site_id}: the site identity was replaced",
                                             checkpoint=n))
            if self.site_id is not None and cp.get("site_id") is None and self.seen_v2:
                self.problems.append(Problem("checkpoint", f"checkpoint #{n} carries no site identity after "
                                             "checkpoints that did: its site was stripped", checkpoint=n))
            self.seen_v2 = self.seen_v2 or cp.get("site_id") is not None
            if cp.get("tsa_token") and self.check_token is not None:
                reason = self.check_token(cp["tsa_token"], bytes.fromhex(sm3_hex(tbs)))
                if reason:
                    self.problems.append(Problem("timestamp", f"checkpoint #{n}: its RFC 3161 token {reason}",
                                                 checkpoint=n))
            if n != expected:
                self.problems.append(Problem("checkpoint", f"checkpoints #{expected}..#{n - 1} are missing "
                                             f"(deleted) before checkpoint #{n}", checkpoint=n))
            if sm3_hex(tbs) != cp["hash"]:
                self.problems.append(Problem("checkpoint", f"checkpoint #{n} was modified: its content does not "
                                             "match its hash", checkpoint=n))
            if cp["prev_hash"] != prev_hash and n == expected:
                self.problems.append(Problem("checkpoint", f"checkpoint #{n} does not chain to checkpoint "
                                             f"#{n - 1}", checkpoint=n))
            if self.spki is None:
                self.problems.append(Problem("signature", f"checkpoint #{n} cannot be checked: no audit public key",
                                             checkpoint=n))
            elif cp["key_fingerprint"] != self.fingerprint:
                self.problems.append(Problem("signature", f"checkpoint #{n} names a key that is not the audit key "
                                             f"({cp['key_fingerprint'][:16]}...)", checkpoint=n))
            elif not _signature_ok(self.spki, tbs, cp["signature"]):
                self.problems.append(Problem("signature", f"checkpoint #{n}: the SM2 signature does not verify",
                                             checkpoint=n))
            elif sm3_hex(tbs) == cp["hash"]:
                self.valid.add(n)
            heads = {}
            for w, s, h in cp["heads"]:
                heads[w] = int(s)
                self.signed.setdefault((w, int(s)), []).append((n, h))
            for w, s in prev_heads.items():
                if heads.get(w, -1) < s:
                    self.problems.append(Problem("checkpoint", f"checkpoint #{n} shrinks chain {w} "
                                                 f"(#{s} -> #{heads.get(w)})", writer=w, checkpoint=n))
            prev_hash, expected, prev_heads = cp["hash"], n + 1, heads
            self.last = {"seq": n, "at": as_utc(_time(cp["at"])), "heads": heads}


def _cps_text(numbers: list[int]) -> str:
    numbers = sorted(set(numbers))
    return (f"checkpoint #{numbers[0]}" if len(numbers) == 1
            else "checkpoints " + ", ".join(f"#{n}" for n in numbers))


def _time(value) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value


def _signature_ok(spki: bytes, data: bytes, signature_hex: str) -> bool:
    try:
        return verify_signature(spki, SM2_SM3, data, bytes.fromhex(signature_hex))
    except ValueError:
        return False


class _ChainWalker:
    """Walks rows in (writer, seq) order, one writer at a time, and records what does not chain."""

    REORDER_WINDOW = 64

    def __init__(self, writers: dict[str, str | None], cps: _CheckpointState, problems: list[Problem],
                 grace: dt.timedelta):
        self.writers = writers          # writer id -> genesis hash (None: writer not registered)
        self.cps, self.problems, self.grace = cps, problems, grace
        self.current: str | None = None
        self.rows = self.unanchored = 0
        self.seen_writers: set[str] = set()
        self.good: dict[str, int] = {}      # writer -> highest seq matching a signed head
        self.last_seq: dict[str, int] = {}  # writer -> last seq in the database

    def _start(self, writer: str, row_id, seq) -> None:
        self.current, self.expected, self.prev_hash, self.prev_id = writer, 1, self.writers.get(writer), None
        self.seen_writers.add(writer)
        if writer not in self.writers:
            self.problems.append(Problem("inserted", f"{_where(row_id, writer, seq)} claims writer {writer!r}, "
                                         "which was never registered: inserted", row_id, writer, seq))

    def row(self, row_id, writer: str, seq: int, prev_hash: str, stored: str, computed: str | None,
            at: dt.datetime | None, content=None) -> None:
        """``computed`` is the hash recomputed from the row (None for a content-less link)."""
        self.rows += 1
        if writer != self.current:
            self._start(writer, row_id, seq)
        where = _where(row_id, writer, seq)
        gap = seq != self.expected
        if seq > self.expected:
            missing = (f"#{self.expected}" if seq == self.expected + 1 else f"#{self.expected}..#{seq - 1}")
            after = f" (after row id {self.prev_id})" if self.prev_id is not None else ""
            self.problems.append(Problem("deleted", f"writer {writer}: row {missing} is missing before {where}"
                                         f"{after}: deleted", row_id, writer, self.expected))
        elif seq < self.expected:
            self.problems.append(Problem("inserted", f"{where} repeats a sequence number already used in its "
                                         "chain: inserted", row_id, writer, seq))
        modified = computed is not None and computed != stored
        if modified:
            kind, how = "modified", "its content does not match its hash: modified"
            moved = self._hashes_at_other_seq(content, seq, stored)
            if moved is not None:
                kind, how = "reordered", f"its content hashes correctly at {writer}#{moved}: reordered (seq changed)"
            self.problems.append(Problem(kind, f"{where}: {how}", row_id, writer, seq))
        if not gap and self.prev_hash is not None and prev_hash != self.prev_hash and not modified:
            prev = f"row id {self.prev_id}" if self.prev_id is not None else "the writer's registration"
            self.problems.append(Problem("broken-link", f"{where} does not chain to {prev} ({writer}#{seq - 1}): "
                                         f"{prev} was modified (and re-hashed) or {where} was inserted",
                                         row_id, writer, seq))
        rewritten, replaced = [], []
        for n, signed_hash in self.cps.signed.pop((writer, seq), ()):
            if signed_hash == stored and not modified:
                self.good[writer] = max(self.good.get(writer, 0), seq)
            elif n in self.cps.valid and not modified:
                rewritten.append(n)
            else:
                replaced.append(n)
        if rewritten:
            first = self.good.get(writer, 0) + 1
            span = f"#{first}" if first == seq else f"#{first}..#{seq}"
            self.problems.append(Problem("rewritten", f"writer {writer}: the chain was rewritten and re-hashed: "
                                         f"{where} is not the head signed in {_cps_text(rewritten)}; the first "
                                         f"rewritten row is among {span}", row_id, writer, seq, max(rewritten)))
        if replaced:
            self.problems.append(Problem("modified", f"{where} differs from the head signed in "
                                         f"{_cps_text(replaced)}: modified or replaced", row_id, writer, seq,
                                         max(replaced)))
        self.last_seq[writer] = seq
        last = self.cps.last
        if last is None or seq > last["heads"].get(writer, 0):
            self.unanchored += 1
            if last is not None and at is not None and as_utc(at) < last["at"] - self.grace:
                self.problems.append(Problem("inserted", f"{where} is dated {canonical_time(at)}, before checkpoint "
                                             f"#{last['seq']} ({canonical_time(last['at'])}), but that checkpoint "
                                             "does not cover it: inserted after the checkpoint", row_id, writer,
                                             seq, last["seq"]))
        self.expected = max(self.expected, seq + 1)
        self.prev_hash, self.prev_id = stored, row_id

    def _hashes_at_other_seq(self, content, seq: int, stored: str) -> int | None:
        if content is None:
            return None
        probe = dict(content)
        for delta in range(1, self.REORDER_WINDOW + 1):
            for candidate in (seq - delta, seq + delta):
                if candidate > 0:
                    probe["seq"] = candidate
                    if row_hash(probe) == stored:
                        return candidate
        return None

    def finish(self) -> None:
        gone: dict[str, tuple[int, int]] = {}
        for (writer, seq), signed in sorted(self.cps.signed.items()):
            if writer not in self.seen_writers:
                top = max(seq, gone.get(writer, (0, 0))[0])
                gone[writer] = (top, max(n for n, _h in signed))
                continue
            last = self.last_seq.get(writer, 0)
            numbers = [n for n, _h in signed]
            if seq > last:
                span = f"#{seq}" if seq == last + 1 else f"#{last + 1}..#{seq}"
                self.problems.append(Problem("deleted", f"writer {writer}: its tail {span} is missing (row "
                                             f"{writer}#{seq} is the chain head signed in {_cps_text(numbers)}, "
                                             f"the database ends at #{last}): truncated", None, writer, seq,
                                             max(numbers)))
            else:
                self.problems.append(Problem("deleted", f"row {writer}#{seq}, signed as a chain head in "
                                             f"{_cps_text(numbers)}, is missing: deleted", None, writer, seq,
                                             max(numbers)))
        for writer, (top, n) in sorted(gone.items()):
            self.problems.append(Problem("deleted-writer", f"writer {writer} is gone: all its rows #1..#{top} are "
                                         f"missing, though checkpoint #{n} signs its head #{top}: deleted writer",
                                         None, writer, top, n))
        self.cps.signed.clear()


def _token_checker(trust: tuple[bytes, ...]):
    """A checkpoint's RFC 3161 token must be over SM3 of its signed bytes (and chain to ``trust`` if given)."""
    def check(token_b64: str, digest: bytes) -> str | None:
        try:
            token = base64.b64decode(token_b64, validate=True)
        except ValueError:
            return "is not base64"
        result = verify_token(token, digest=digest, trust=trust)
        if not result.ok:
            return "does not verify: " + "; ".join(result.reasons)
        if result.imprint_algorithm not in (None, "sm3"):
            return f"is over {result.imprint_algorithm}, not SM3"
        return None
    return check


def verify(db: sessionmaker[Session], public_key_info: bytes | None, *, grace: dt.timedelta = DEFAULT_GRACE,
           batch: int = 5000, km: KeyManager | None = None, expected_site: str | None = None,
           sink_path: str | Path | None = None, tsa_trust: tuple[bytes, ...] = ()) -> VerifyResult:
    """Check the whole audit trail in the database against the audit public key (SPKI DER).

    ``km``: also against the site's HSM anchor (a deleted or replaced checkpoint, the tail it covered, a
    replaced site identity); ``expected_site``: the site identity the operator pinned (``[audit] site_id``);
    ``sink_path``: against the checkpoints written to the append-only sink file; ``tsa_trust``: roots the
    checkpoints' RFC 3161 tokens must chain to (their imprint is always checked)."""
    problems: list[Problem] = []
    notes: list[str] = []
    with db() as session:
        try:
            site = site_id_of(session)
        except AuditError as exc:
            site = None
            problems.append(Problem("site", str(exc)))
        writers = {w.id: writer_genesis(w) for w in session.scalars(select(AuditWriter))}
        cp_rows = [_cp_dict(c) for c in session.scalars(select(AuditCheckpoint))]
        cps = _CheckpointState(public_key_info, problems, site, _token_checker(tsa_trust))
        cps.check(cp_rows)
        walker = _ChainWalker(writers, cps, problems, grace)
        columns = [getattr(AuditEvent, c) for c in _ROW_COLUMNS]
        result = session.execute(select(*columns).order_by(AuditEvent.writer_id, AuditEvent.seq)
                                 .execution_options(yield_per=batch))
        for row in result:
            content = dict(row._mapping)
            walker.row(content["id"], content["writer_id"], content["seq"], content["prev_hash"], content["hash"],
                       row_hash(content), content["at"], content)
        walker.finish()
    for writer in sorted(set(writers) - walker.seen_writers):
        problems.append(Problem("deleted", f"writer {writer} is registered but has no rows: all deleted",
                                writer=writer))
    if expected_site and site != expected_site:
        problems.append(Problem("site", f"the database names site {site}, but [audit] site_id pins "
                                f"{expected_site}: the site identity was replaced"))
    if km is not None and not cp_rows and walker.rows:
        with db() as session:
            oldest = session.scalar(select(func.min(AuditEvent.at)))
        if oldest is not None and as_utc(oldest) < utcnow() - grace:
            problems.append(Problem("checkpoint", f"rows since {canonical_time(oldest)} are older than {grace} but "
                                    "no checkpoint exists: the checkpoints were deleted (or none was ever signed: "
                                    "run `racentre audit checkpoint`)"))
    if km is not None:
        if site is None:
            if any(c.get("site_id") for c in cp_rows):
                problems.append(Problem("site", "the site identity (audit_site) is gone, but checkpoints were signed "
                                        "for one: deleted"))
            else:
                notes.append("no site identity yet (run `racentre setup`): no HSM anchor to check")
        else:
            readable = True
            try:
                held, _raw = read_anchor(km, site)
            except (AuditError, HsmError) as exc:
                held, readable = None, False
                problems.append(Problem("anchor", f"the HSM anchor of site {site} cannot be read: "
                                        f"{exc.public_message}"))
            found, more = _anchor_findings(held, site, cp_rows) if readable else ([], [])
            problems.extend(found)
            notes.extend(more)
            if held is None and found:
                others = sorted(label[len(ANCHOR_PREFIX):] for label in km.list_data(ANCHOR_APPLICATION))
                if others:
                    notes.append(f"the token holds anchors of {len(others)} other site identities "
                                 f"(e.g. {', '.join(others[:3])})")
            if held is not None:
                notes.append(f"HSM anchor of site {site}: checkpoint #{held.seq} ({held.at}, {held.heads} chain heads)")
    else:
        notes.append("the HSM anchor was not checked")
    if sink_path is not None:
        problems.extend(_sink_findings(read_sink(sink_path), site, cp_rows))
    if walker.unanchored:
        notes.append(f"{walker.unanchored} rows after the last checkpoint are chained but not yet signed")
    return VerifyResult(not problems, walker.rows, len(writers | dict.fromkeys(walker.seen_writers)), cps.count,
                        walker.unanchored, tuple(problems), tuple(notes), cps.fingerprint)


def _sink_findings(entries: list[dict], site: str | None, cps: list[dict]) -> list[Problem]:
    """Every checkpoint the sink recorded for this site must be in the database, unchanged."""
    by_seq = {c["seq"]: c for c in cps}
    problems = []
    for e in entries:
        if site is not None and e.get("site") != site:
            continue
        n = int(e["seq"])
        cp = by_seq.get(n)
        if cp is None:
            problems.append(Problem("checkpoint", f"checkpoint #{n} ({e.get('at')}) is in the append-only sink but "
                                    "not in the database: deleted", checkpoint=n))
        elif cp["hash"] != e.get("hash"):
            problems.append(Problem("checkpoint", f"checkpoint #{n} differs from the one in the append-only sink: "
                                    "replaced", checkpoint=n))
    return problems


# ----------------------------------------------------------------------------- auditor export
@dataclass(frozen=True)
class ExportResult:
    path: Path
    signature_path: Path
    public_key_path: Path
    rows: int
    links: int
    checkpoints: int

    def files(self) -> list[Path]:
        return [self.path, self.signature_path, self.public_key_path]


def parse_bound(text: str | None) -> int | dt.datetime | None:
    """``--from``/``--to``: a row id (digits) or an ISO 8601 time (UTC if no offset is given)."""
    if text is None or text == "":
        return None
    if text.isdigit():
        return int(text)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AuditError(f"{text!r} is neither a row id nor an ISO 8601 time") from exc
    return as_utc(value)


def _bound_clause(start, end):
    clauses = []
    for bound, op in ((start, "ge"), (end, "le")):
        if bound is None:
            continue
        column = AuditEvent.id if isinstance(bound, int) else AuditEvent.at
        clauses.append(column >= bound if op == "ge" else column <= bound)
    return clauses


def _json_row(row: dict) -> dict:
    return {"id": row["id"], "writer": row["writer_id"], "seq": row["seq"], "prev_hash": row["prev_hash"],
            "hash": row["hash"], "at": canonical_time(row["at"]), "actor": row["actor"], "role": row["role"],
            "action": row["action"], "target_type": row["target_type"], "target_id": row["target_id"],
            "detail": row["detail"]}


def _json_link(row: dict) -> dict:
    digest = body_digest(row["at"], row["actor"], row["role"], row["action"], row["target_type"], row["target_id"],
                         row["detail"])
    return {"writer": row["writer_id"], "seq": row["seq"], "prev_hash": row["prev_hash"], "body_digest": digest,
            "hash": row["hash"]}


def _json_checkpoint(cp: AuditCheckpoint) -> dict:
    return {"seq": cp.seq, "at": canonical_time(cp.at), "prev_hash": cp.prev_hash, "heads": cp.heads,
            "key_fingerprint": cp.key_fingerprint, "signature": cp.signature, "hash": cp.hash,
            "site_id": cp.site_id, "tsa_token": cp.tsa_token}


def export_range(db: sessionmaker[Session], km: KeyManager, out: str | Path, *, start=None, end=None,
                 key_label: str = DEFAULT_KEY_LABEL, actor: str = "auditor", role: str = "auditor",
                 public_key_path: str | Path | None = None, checkpointer: "Checkpointer | None" = None) -> ExportResult:
    """Write rows ``start..end`` (ids or times, inclusive) to ``out`` with their links to signed heads, sign
    the file's bytes with the audit key (``out.sig``, DER) and write the public key PEM beside it."""
    out = Path(out)
    spki = ensure_audit_key(km, key_label)
    if checkpointer is not None:                     # the range's newest rows are covered by a signature
        checkpointer.checkpoint()
    else:
        checkpoint(db, km, key_label=key_label)
    columns = [getattr(AuditEvent, c) for c in _ROW_COLUMNS]
    with db() as session:
        in_range = [dict(r._mapping) for r in session.execute(
            select(*columns).where(*_bound_clause(start, end)).order_by(AuditEvent.writer_id, AuditEvent.seq))]
        cps = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))
        spans: dict[str, list[int]] = {}
        for r in in_range:
            span = spans.setdefault(r["writer_id"], [r["seq"], r["seq"]])
            span[0], span[1] = min(span[0], r["seq"]), max(span[1], r["seq"])
        used_cps: dict[int, AuditCheckpoint] = {}
        links: list[dict] = []
        have = {(r["writer_id"], r["seq"]) for r in in_range}
        for writer, (low, high) in sorted(spans.items()):
            cover = next((cp for cp in cps for w, s, _h in cp.heads if w == writer and s >= high), None)
            if cover is None:
                raise AuditError(f"no checkpoint covers writer {writer} up to #{high}")
            used_cps[cover.seq] = cover
            top = next(s for w, s, _h in cover.heads if w == writer)
            for r in session.execute(select(*columns).where(AuditEvent.writer_id == writer, AuditEvent.seq >= low,
                                                            AuditEvent.seq <= top).order_by(AuditEvent.seq)):
                r = dict(r._mapping)
                if (writer, r["seq"]) not in have:
                    links.append(_json_link(r))
        writers = [{"id": w.id, "node": w.node, "pid": w.pid, "nonce": w.nonce, "slot": w.slot,
                    "started_at": canonical_time(w.started_at)}
                   for w in session.scalars(select(AuditWriter).where(AuditWriter.id.in_(list(spans))))]
    public_pem = pem.armor("PUBLIC KEY", spki).decode("ascii")
    document = {
        "format": EXPORT_FORMAT,
        "generated_at": canonical_time(utcnow()),
        "range": {"from": _bound_text(start), "to": _bound_text(end)},
        "hash_algorithm": HASH_ALGORITHM,
        "signature_algorithm": "sm2-with-sm3 (GB/T 32918.2, user ID 1234567812345678), DER",
        "encoding": "see audit/trail.py: row hash = SM3(tag|lp(writer)|lp(seq)|lp(prev_hash)|lp(body_digest))",
        "key_fingerprint": key_fingerprint(spki),
        "public_key": public_pem,
        "writers": sorted(writers, key=lambda w: w["id"]),
        "rows": [_json_row(r) for r in in_range],
        "links": links,
        "checkpoints": [_json_checkpoint(cp) for _n, cp in sorted(used_cps.items())],
    }
    data = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    sig_path = out.with_name(out.name + ".sig")
    sig_path.write_bytes(km.sign(key_label, data))
    pub_path = Path(public_key_path) if public_key_path else out.with_name(out.name + ".pub.pem")
    pub_path.write_text(public_pem, encoding="ascii")
    with transaction(db) as session:
        record(session, actor=actor, role=role, action="audit.export", target_type="audit", target_id=out.name,
               range=document["range"], rows=len(in_range), sm3=sm3_hex(data))
    return ExportResult(out, sig_path, pub_path, len(in_range), len(links), len(used_cps))


def _bound_text(bound) -> str | int | None:
    return canonical_time(bound) if isinstance(bound, dt.datetime) else bound


def load_public_key(path: str | Path) -> bytes:
    data = Path(path).read_bytes()
    if pem.detect(data):
        _kind, _headers, data = pem.unarmor(data)
    return data


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    rows: int
    links: int
    checkpoints: int
    fingerprint: str | None
    key_source: str
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "links": self.links, "checkpoints": self.checkpoints,
                "key_fingerprint": self.fingerprint, "key_source": self.key_source,
                "problems": [p.as_dict() for p in self.problems]}


def verify_export(path: str | Path, *, signature_path: str | Path | None = None,
                  public_key_info: bytes | None = None) -> ExportCheck:
    """Check an export on its own: the detached signature over its bytes, every row and link, and that each
    writer's rows chain to a head signed in an included checkpoint. Without ``public_key_info`` the key
    embedded in the file is used (compare its fingerprint with one obtained out of band)."""
    path = Path(path)
    data = path.read_bytes()
    problems: list[Problem] = []
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        doc = None
        problems.append(Problem("format", f"{path.name} is not valid JSON: {exc}"))
    key_source = "given"
    if public_key_info is None and isinstance(doc, dict) and isinstance(doc.get("public_key"), str):
        try:
            public_key_info = pem.unarmor(doc["public_key"].encode("ascii"))[2]
            key_source = "embedded in the export"
        except (ValueError, UnicodeEncodeError):
            problems.append(Problem("format", "the embedded public key is not a PEM public key"))
    if public_key_info is None:
        problems.append(Problem("signature", "no public key to check the export with"))
    sig_path = Path(signature_path) if signature_path else path.with_name(path.name + ".sig")
    try:
        signature = sig_path.read_bytes()
    except OSError:
        signature = None
        problems.append(Problem("signature", f"signature file {sig_path.name} is missing"))
    if public_key_info is not None and signature is not None:
        try:
            good = verify_signature(public_key_info, SM2_SM3, data, signature)
        except ValueError:
            good = False
        if not good:
            problems.append(Problem("signature", f"the signature in {sig_path.name} does not verify over "
                                    f"{path.name}: the file was altered or signed by another key"))
    fingerprint = key_fingerprint(public_key_info) if public_key_info else None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        if doc is not None:
            problems.append(Problem("format", f"not a {EXPORT_FORMAT} document"))
        return ExportCheck(False, 0, 0, 0, fingerprint, key_source, tuple(problems))
    try:
        rows, links, cp_count = _check_export_chains(doc, public_key_info, problems)
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(Problem("format", f"malformed export: {type(exc).__name__}: {exc}"))
        rows = links = cp_count = 0
    return ExportCheck(not problems, rows, links, cp_count, fingerprint, key_source, tuple(problems))


def _check_export_chains(doc: dict, spki: bytes | None, problems: list[Problem]) -> tuple[int, int, int]:
    cps = _CheckpointState(spki, problems)
    checkpoints = doc["checkpoints"]
    # An export carries only the covering checkpoints: check each one's own hash and signature, not the
    # checkpoint-to-checkpoint links (those are checked by `racentre audit verify` on the database).
    for cp in checkpoints:
        tbs = checkpoint_tbs(cp["seq"], cp["at"], cp["prev_hash"], cp["key_fingerprint"], cp["heads"],
                             cp.get("site_id"))
        n = cp["seq"]
        if sm3_hex(tbs) != cp["hash"]:
            problems.append(Problem("checkpoint", f"checkpoint #{n} was modified: its content does not match its "
                                    "hash", checkpoint=n))
        if spki is not None and (cp["key_fingerprint"] != cps.fingerprint or not _signature_ok(spki, tbs,
                                                                                                cp["signature"])):
            problems.append(Problem("signature", f"checkpoint #{n}: the SM2 signature does not verify",
                                    checkpoint=n))
    heads: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for cp in checkpoints:
        for w, s, h in cp["heads"]:
            heads.setdefault((w, int(s)), []).append((cp["seq"], h))
    genesis = {w["id"]: writer_genesis(w) for w in doc["writers"]}
    entries: dict[str, list[tuple[int, dict, bool]]] = {}
    for r in doc["rows"]:
        entries.setdefault(r["writer"], []).append((int(r["seq"]), r, True))
    for link in doc["links"]:
        entries.setdefault(link["writer"], []).append((int(link["seq"]), link, False))
    for writer, items in sorted(entries.items()):
        items.sort(key=lambda item: item[0])
        prev_hash, expected = None, None
        for seq, item, full in items:
            row_id = item.get("id")
            where = _where(row_id, writer, seq)
            if full:
                fields = {"writer_id": writer, "seq": seq, "prev_hash": item["prev_hash"], "at": item["at"],
                          "actor": item["actor"], "role": item["role"], "action": item["action"],
                          "target_type": item["target_type"], "target_id": item["target_id"],
                          "detail": item["detail"]}
                computed = row_hash(fields)
            else:
                computed = link_hash(writer, seq, item["prev_hash"], item["body_digest"])
            if computed != item["hash"]:
                problems.append(Problem("modified", f"{where}: its content does not match its hash: modified",
                                        row_id, writer, seq))
            if expected is None:
                if seq == 1 and item["prev_hash"] != genesis.get(writer):
                    problems.append(Problem("broken-link", f"{where} does not chain to its writer's registration",
                                            row_id, writer, seq))
            elif seq != expected:
                problems.append(Problem("deleted", f"writer {writer}: rows #{expected}..#{seq - 1} are missing "
                                        f"from the export before {where}", row_id, writer, expected))
            elif item["prev_hash"] != prev_hash:
                problems.append(Problem("broken-link", f"{where} does not chain to {writer}#{seq - 1}",
                                        row_id, writer, seq))
            prev_hash, expected = item["hash"], seq + 1
        last_seq = items[-1][0]
        signed = heads.get((writer, last_seq))
        if not signed:
            problems.append(Problem("unanchored", f"writer {writer}: the export ends at #{last_seq}, which no "
                                    "included checkpoint signs", writer=writer, seq=last_seq))
        elif any(h != prev_hash for _n, h in signed):
            problems.append(Problem("modified", f"writer {writer}#{last_seq} differs from the head signed in "
                                    f"checkpoint #{signed[0][0]}", writer=writer, seq=last_seq,
                                    checkpoint=signed[0][0]))
    return len(doc["rows"]), len(doc["links"]), len(checkpoints)
