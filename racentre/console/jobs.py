"""Resumable console jobs: CRL regeneration for every CA, KEK rotation with re-wrapping in batches,
and bulk import of civil servants from a CSV or XLSX (ECMA-376 / ISO/IEC 29500 workbook) roster.

A job is a row (``console_job``) with a cursor. A runner claims it under a lease, runs one chunk,
stores the new cursor and progress, and goes on; a crashed or restarted process leaves a lapsed lease
behind and any process's runner picks the job up where the cursor says. Each chunk is safe to run
twice (CRLs are simply signed again, re-wrapping moves only rows still on an old KEK, importing a
civil servant already registered returns the existing row), so a crash between a chunk and its
cursor update loses nothing and duplicates nothing.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import threading
import uuid
import zipfile
from dataclasses import dataclass
from typing import Callable, Mapping

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from audit.trail import record
from store.db import as_utc, transaction, utcnow
from pkicore.errors import ErrorCode, PkiError
from ra.workflow import Actor
from racentre.console.columns import column_key   # the Chinese headers of 批量导入 (姓名, 身份证号, ...)
from racentre.console.models import ConsoleJob

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)
MAX_ROSTER = 5 * 1024 * 1024
MAX_UNPACKED = 64 * 1024 * 1024          # an XLSX is a ZIP: refuse one that unpacks to more than this
XLSX_MAGIC = b"PK\x03\x04"
ROSTER_COLUMNS = ("name", "id_number", "department", "position", "contact")


class JobError(PkiError):
    code = ErrorCode.BAD_REQUEST


class KmcElsewhere(PkiError):
    """This service holds no KMC: it runs as its own service ([kmc] url); use the console there."""
    code = ErrorCode.NOT_FOUND


def local_kmc(extensions: Mapping):
    """The in-process KMC (``kms.services.KmsParts``), or a clear error when the KMC is a separate service."""
    kmc = extensions.get("racentre.kms")
    if kmc is None:
        raise KmcElsewhere("the key-management centre runs as a separate service here ([kmc] url): "
                           "key recovery and KEK rotation are done in that service's console")
    return kmc


@dataclass(frozen=True)
class Chunk:
    cursor: dict
    progress: int
    total: int | None
    done: bool
    result: dict | None = None


@dataclass(frozen=True)
class JobContext:
    """What chunks may use: the app's package services (``app.extensions``) and the batch size."""

    extensions: Mapping
    batch: int


# ---------------------------------------------------------------------------------------------- chunks

def crl_chunk(ctx: JobContext, job: ConsoleJob) -> Chunk:
    """Sign a new full and delta CRL for the next CA (RFC 5280 §5; roots included, they sign CRLs too)."""
    ca = ctx.extensions["racentre.ca"]
    names = job.cursor.get("names") or sorted(ca.authorities())
    index = job.cursor.get("index", 0)
    if index < len(names):
        ca.crls.generate(names[index])
        ca.crls.generate(names[index], delta=True)
        index += 1
    return Chunk({"names": names, "index": index}, index, len(names), index >= len(names),
                 {"signed": names[:index]})


def kek_chunk(ctx: JobContext, job: ConsoleJob) -> Chunk:
    """Start a KEK rotation unless one is under way, then re-wrap one batch (kms.escrow)."""
    escrow = local_kmc(ctx.extensions).escrow
    actor = job.created_by
    cursor = dict(job.cursor)
    if "version" not in cursor:
        status = escrow.kek_status()
        active = [k["version"] for k in status if k["state"] == "active"]
        if not any(k["state"] == "retiring" for k in status):
            active = [escrow.rotate_kek(actor=actor)]
            status = escrow.kek_status()
        cursor = {"version": active[-1], "moved": 0,
                  "total": sum(k["rows"] for k in status if k["state"] == "retiring")}
        return Chunk(cursor, 0, cursor["total"], False, {"active_version": cursor["version"]})
    moved = escrow.rewrap_batch(actor=actor, limit=ctx.batch)
    cursor["moved"] += moved
    total = max(cursor["total"], cursor["moved"])
    return Chunk(cursor, cursor["moved"], total, moved == 0, {"active_version": cursor["version"]})


def _rows_from_header(header, records) -> list[dict]:
    """Roster rows from a header and value tuples, the same checks whatever the file format."""
    header = [column_key(str(h)) or "" if h is not None else "" for h in header or []]
    if not {"name", "id_number"} <= set(header):
        raise JobError("the roster's header names the columns 姓名 (name) and 身份证号 (id_number) "
                       "(optional: 部门 department, 职务 position, 联系方式 contact)")
    rows = []
    for values in records:
        row = {}
        for key, value in zip(header, values):
            if key and key not in row:
                row[key] = (value or "").strip()
        if not any(row.values()):
            continue                                    # blank lines (spreadsheets keep formatted empty rows)
        rows.append({k: row.get(k) or None for k in ROSTER_COLUMNS})
    return rows


def _cell_text(value) -> str:
    """A cell as the text a person typed: whole numbers without ".0", dates as ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def _parse_xlsx(data: bytes) -> list[dict]:
    """The first worksheet of an XLSX roster: the first non-empty row is the header."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED:
                raise JobError(f"the XLSX roster unpacks to more than {MAX_UNPACKED // (1024 * 1024)} MiB")
        # imported here, on the first XLSX roster, not by every serving worker: openpyxl is ~12 MiB of
        # resident memory per process, and the service's RSS is bounded
        import openpyxl
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except JobError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, XML and openpyxl errors alike mean "not a workbook"
        raise JobError("the roster is not a readable XLSX workbook") from exc
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise JobError("the XLSX roster has no worksheet")
        records = ([_cell_text(v) for v in values] for values in sheet.iter_rows(values_only=True))
        header = next((r for r in records if any(r)), None)
        return _rows_from_header(header, records)
    finally:
        workbook.close()


def parse_roster(data: bytes) -> list[dict]:
    """Roster rows: a header naming at least name and id_number. XLSX (recognised by its ZIP signature;
    the first worksheet) or CSV (UTF-8, with or without BOM, or GB 18030 as spreadsheet exports on
    Chinese systems write it)."""
    if data.startswith(XLSX_MAGIC):
        return _parse_xlsx(data)
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise JobError("the roster is neither UTF-8 nor GB 18030 text")
    reader = csv.reader(io.StringIO(text))
    return _rows_from_header(next(reader, None), reader)


def import_chunk(ctx: JobContext, job: ConsoleJob) -> Chunk:
    """Register the next batch of civil servants (ra.workflow.add_civil_servant; idempotent per row)."""
    ra = ctx.extensions["racentre.ra"]
    rows = parse_roster(job.payload or b"")
    start = job.cursor.get("row", 0)
    actor = Actor(job.created_by, job.params.get("role", "ra_operator"))
    errors, created, existing = [], 0, 0
    for number, row in enumerate(rows[start:start + ctx.batch], start=start + 1):
        try:
            _, new = ra.add_civil_servant(actor, unit_id=job.params["unit_id"], **row)
            created, existing = created + new, existing + (not new)
        except PkiError as exc:
            errors.append({"row": number, "error": exc.public_message})
    end = min(start + ctx.batch, len(rows))
    result = dict(job.result or {})
    result["created"] = result.get("created", 0) + created
    result["existing"] = result.get("existing", 0) + existing
    result["errors"] = (result.get("errors") or []) + errors
    return Chunk({"row": end}, end, len(rows), end >= len(rows), result)


HANDLERS: dict[str, Callable[[JobContext, ConsoleJob], Chunk]] = {
    "crl": crl_chunk, "kek-rotation": kek_chunk, "import-civil-servants": import_chunk}


# ------------------------------------------------------------------------------------------ submitting

def submit(db: sessionmaker[Session], kind: str, *, actor: str, role: str, params: dict | None = None,
           payload: bytes | None = None) -> int:
    if kind not in HANDLERS:
        raise JobError(f"unknown job kind {kind!r}")
    if payload is not None and len(payload) > MAX_ROSTER:
        raise JobError(f"uploads are limited to {MAX_ROSTER // (1024 * 1024)} MiB")
    if kind == "import-civil-servants":
        rows = parse_roster(payload or b"")          # refuse a bad file now, not in the runner
        if not rows:
            raise JobError("the roster has no rows")
    with transaction(db) as session:
        job = ConsoleJob(kind=kind, state="queued", progress=0, cursor={}, params={**(params or {}), "role": role},
                         payload=payload, result={}, created_by=actor)
        session.add(job)
        session.flush()
        record(session, actor=actor, role=role, action="console.job.submit", target_type="console_job",
               target_id=job.id, kind=kind, params=params or {})
        return job.id


def resume(db: sessionmaker[Session], job_id: int, *, actor: str, role: str) -> None:
    """Put a failed job back in the queue; it continues from its cursor."""
    with transaction(db) as session:
        job = session.get(ConsoleJob, job_id, with_for_update=True)
        if job is None:
            raise JobError(f"no job {job_id}", code=ErrorCode.NOT_FOUND)
        if job.state != "failed":
            raise JobError(f"job {job_id} is {job.state}; only failed jobs are resumed", code=ErrorCode.CONFLICT)
        job.state, job.error, job.lease_owner, job.lease_until = "queued", None, None, None
        record(session, actor=actor, role=role, action="console.job.resume", target_type="console_job",
               target_id=job.id, kind=job.kind)


def as_dict(job: ConsoleJob) -> dict:
    return {"id": job.id, "kind": job.kind, "state": job.state, "progress": job.progress, "total": job.total,
            "result": job.result or {}, "error": job.error, "created_by": job.created_by,
            "created_at": as_utc(job.created_at).isoformat(), "updated_at": as_utc(job.updated_at).isoformat()}


# -------------------------------------------------------------------------------------------- running

class JobRunner:
    """Claims and runs job chunks; ``start()`` runs it in a daemon thread of this process."""

    def __init__(self, db: sessionmaker[Session], extensions: Mapping, batch: int = 50):
        self.db = db
        self.ctx = JobContext(extensions, batch)
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _claim(self, now: dt.datetime) -> ConsoleJob | None:
        with transaction(self.db) as session:
            job = session.scalar(select(ConsoleJob).where(
                ConsoleJob.state.in_(("queued", "running")),
                or_(ConsoleJob.lease_until.is_(None), ConsoleJob.lease_until < now, ConsoleJob.lease_owner == self.owner),
            ).order_by(ConsoleJob.id).limit(1).with_for_update(skip_locked=True))
            if job is None:
                return None
            job.state, job.lease_owner, job.lease_until, job.updated_at = "running", self.owner, now + LEASE, now
            session.flush()
            session.expunge(job)
            return job

    def run_once(self) -> bool:
        """Run one chunk of one claimable job; False when there was none."""
        job = self._claim(utcnow())
        if job is None:
            return False
        try:
            chunk = HANDLERS[job.kind](self.ctx, job)
        except Exception as exc:  # noqa: BLE001 - a failed chunk fails the job, resumable later
            message = exc.public_message if isinstance(exc, PkiError) else "internal error (see the service log)"
            log.error("console job %s (%s) failed", job.id, job.kind, exc_info=exc)
            self._finish(job.id, state="failed", error=message)
            return True
        self._save(job.id, chunk)
        return True

    def _save(self, job_id: int, chunk: Chunk) -> None:
        with transaction(self.db) as session:
            job = session.get(ConsoleJob, job_id, with_for_update=True)
            if job.lease_owner != self.owner:
                return                                   # lease lapsed and another runner took over
            job.cursor, job.progress, job.total = chunk.cursor, chunk.progress, chunk.total
            if chunk.result is not None:
                job.result = chunk.result
            job.updated_at = utcnow()
            job.lease_until = job.updated_at + LEASE
            if chunk.done:
                job.state, job.lease_owner, job.lease_until = "done", None, None
                record(session, actor=job.created_by, role="system", action="console.job.done",
                       target_type="console_job", target_id=job.id, kind=job.kind, progress=job.progress)

    def _finish(self, job_id: int, *, state: str, error: str) -> None:
        with transaction(self.db) as session:
            job = session.get(ConsoleJob, job_id, with_for_update=True)
            job.state, job.error, job.lease_owner, job.lease_until, job.updated_at = state, error, None, None, utcnow()
            record(session, actor=job.created_by, role="system", action=f"console.job.{state}",
                   target_type="console_job", target_id=job.id, kind=job.kind, error=error)

    def run_until_idle(self, max_chunks: int = 10_000) -> int:
        count = 0
        while count < max_chunks and self.run_once():
            count += 1
        return count

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="console-jobs", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # noqa: BLE001 - keep the runner alive (database restarts etc.)
                log.exception("console job runner")
                busy = False
            if not busy:
                self._stop.wait(1.0)
