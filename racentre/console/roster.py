"""批量导入: a roster of civil servants (XLSX, the first worksheet, or CSV in UTF-8 or GB 18030) with Chinese
column headers as Chinese offices keep them (姓名, 身份证号, 单位, 统一社会信用代码, 法定代表人, 部门, 职务, 手机,
邮箱), checked row by row and written all or nothing: the checks read without the writer lock, then one short
write transaction writes every row or none; any refused row writes nothing, and "check only" never writes. Each
row gets its outcome (新增 / 已登记 / the reason).

Units are found by 统一社会信用代码 (registered if new and the row names 单位 and 法定代表人), else by the exact
单位 name, else the unit chosen on the form. 手机 and 邮箱 go into the person's contact field.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from audit.trail import record, record_many
from store.db import IDS, IN_CHUNK, reading, select_in, transaction
from pkicore.errors import PkiError
from ra.errors import ConflictError, ValidationError
from ra.id_numbers import validate_name, validate_uscc
from ra.models import CivilServant, Unit
from ra.workflow import Actor, Policy, check_same_person, civil_servant_fields
from racentre.console.columns import column_key
from racentre.console.jobs import MAX_ROSTER, MAX_UNPACKED, XLSX_MAGIC, JobError, _cell_text

MAX_ROWS = 5000
MOBILE = re.compile(r"^1[3-9]\d{9}$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class RosterError(JobError):
    """The file as a whole is unusable (not a table, no 姓名/身份证号 columns, too large)."""


@dataclass
class Outcome:
    row: int                  # the spreadsheet's row number (the header is row 1 of the table)
    name: str
    id_suffix: str
    result: str               # created | existing | failed
    message: str = ""
    unit: str = ""


def read_table(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(row number, values)]) of an XLSX (first worksheet) or CSV file; the first non-empty row
    is the header."""
    if len(data) > MAX_ROSTER:
        raise RosterError(f"uploads are limited to {MAX_ROSTER // (1024 * 1024)} MiB")
    if data.startswith(XLSX_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED:
                    raise RosterError("the XLSX roster unpacks to too much data")
            import openpyxl            # on first use only (jobs._parse_xlsx: worker memory)
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except RosterError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile, XML and openpyxl errors alike mean "not a workbook"
            raise RosterError("the roster is not a readable XLSX workbook") from exc
        try:
            if not workbook.worksheets:
                raise RosterError("the XLSX roster has no worksheet")
            rows = [[_cell_text(v).strip() for v in values]
                    for values in workbook.worksheets[0].iter_rows(values_only=True, max_row=MAX_ROWS + 50)]
        finally:
            workbook.close()
    else:
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise RosterError("the roster is neither UTF-8 nor GB 18030 text")
        try:
            rows = [[v.strip() for v in values] for values in csv.reader(io.StringIO(text))]
        except csv.Error as exc:
            raise RosterError(f"the CSV roster is malformed: {exc}") from None
    numbered = [(i, r) for i, r in enumerate(rows, start=1) if any(r)]
    if not numbered:
        raise RosterError("the roster is empty")
    (_, header), body = numbered[0], numbered[1:]
    if len(body) > MAX_ROWS:
        raise RosterError(f"a roster has at most {MAX_ROWS} rows; split the file")
    return header, body


def parse(data: bytes) -> list[tuple[int, dict]]:
    """(row number, fields by key of columns.HEADERS) for each non-empty row."""
    header, body = read_table(data)
    keys = [column_key(h) for h in header]
    if "name" not in keys or "id_number" not in keys:
        raise RosterError("the roster's header needs the columns 姓名 and 身份证号 (optional: 单位, 统一社会信用代码, "
                          "法定代表人, 部门, 职务, 手机, 邮箱)")
    out = []
    for number, values in body:
        row = {}
        for key, value in zip(keys, values):
            if key and key not in row:
                row[key] = value
        out.append((number, row))
    return out


def _contact(row: dict) -> str | None:
    parts = []
    if row.get("mobile"):
        mobile = row["mobile"].replace(" ", "").replace("-", "")
        if not MOBILE.match(mobile):
            raise ValidationError(f"手机号码 {row['mobile']} 不是 11 位大陆手机号")
        parts.append(f"手机 {mobile}")
    if row.get("email"):
        if not EMAIL.match(row["email"]):
            raise ValidationError(f"邮箱 {row['email']} 格式不正确")
        parts.append(f"邮箱 {row['email']}")
    if row.get("contact"):
        parts.append(row["contact"])
    text = "；".join(parts)
    if len(text) > 128:
        raise ValidationError("联系方式（手机、邮箱）合计超过 128 个字符")
    return text or None


@dataclass
class _NewUnit:
    """A unit the roster registers (a 统一社会信用代码 not yet known), validated as ``workflow.add_unit`` does."""

    name: str
    uscc: str
    legal_representative: str
    id: int | None = None           # once written


@dataclass
class _Plan:
    """What the checks found, before anything is written: the units to add, the people to add (row, fields)."""

    units: list[_NewUnit]
    people: list[tuple[Outcome, dict]]


class _Known:
    """The registered units and people the roster names, read once (a few statements, no writer lock),
    plus the units the roster itself registers, in row order."""

    def __init__(self, session, rows: list[tuple[int, dict]], default_unit_id: int | None):
        connection = session.connection()
        usccs = [r["uscc"].strip().upper() for _, r in rows if r.get("uscc")]
        names = [r["unit_name"] for _, r in rows if r.get("unit_name")]
        ids = [(r.get("id_number") or "").strip().upper() for _, r in rows]
        self.by_uscc = {u.uscc: u for u in select_in(connection, _UNITS_BY_USCC, usccs)}
        self.by_name: dict[str, list] = {}
        for u in select_in(connection, _UNITS_BY_NAME, names):
            self.by_name.setdefault(u.name, []).append(u)
        self.people = {p.id_number: p for p in select_in(connection, _PEOPLE_BY_ID_NUMBER, ids)}
        self.default = (session.execute(select(Unit.id, Unit.name).where(Unit.id == default_unit_id)).first()
                        if default_unit_id is not None else None)
        self.new: list[_NewUnit] = []

    def unit_for(self, row: dict, default_unit_id: int | None, policy: Policy):
        """The row's unit (a registered one, or one this roster adds), by the module docstring's rules."""
        if row.get("uscc"):
            uscc = row["uscc"].strip().upper()
            found = self.by_uscc.get(uscc)
            if found is not None:
                if row.get("unit_name") and row["unit_name"] != found.name:
                    raise ValidationError(f"统一社会信用代码 {uscc} 登记的单位是 {found.name}，与本行的单位 {row['unit_name']} 不符")
                return found
            if not row.get("unit_name") or not row.get("legal_representative"):
                raise ValidationError(f"统一社会信用代码 {uscc} 的单位尚未登记：登记新单位需填写 单位 和 法定代表人")
            unit = _NewUnit(validate_name(row["unit_name"], "unit name", 128),
                            validate_uscc(uscc, check_org_code=policy.check_org_code),
                            validate_name(row["legal_representative"], "legal representative"))
            self.by_uscc[uscc] = self.by_uscc[unit.uscc] = unit
            self.by_name.setdefault(unit.name, []).append(unit)
            self.new.append(unit)
            return unit
        if row.get("unit_name"):
            found = self.by_name.get(row["unit_name"], [])
            if len(found) == 1:
                return found[0]
            if found:
                raise ValidationError(f"有多个名为 {row['unit_name']} 的单位：请填写统一社会信用代码")
            raise ValidationError(f"单位 {row['unit_name']} 尚未登记：请填写统一社会信用代码和法定代表人")
        if default_unit_id is None:
            raise ValidationError("本行没有单位：请在名册中填写单位，或在表单中选择单位")
        if self.default is None:
            raise ValidationError(f"unit {default_unit_id} not found")
        return self.default


_UNITS_BY_USCC = select(Unit.id, Unit.name, Unit.uscc).where(Unit.uscc.in_(IDS))
_UNITS_BY_NAME = select(Unit.id, Unit.name).where(Unit.name.in_(IDS))
_PEOPLE_BY_ID_NUMBER = (select(CivilServant.id, CivilServant.name, CivilServant.id_number, CivilServant.unit_id)
                        .where(CivilServant.id_number.in_(IDS)))


class _Undo(Exception):
    """Rolls the import's write transaction back (a person or unit registered by someone else meanwhile)."""


def _check(session, actor: Actor, rows: list[tuple[int, dict]], default_unit_id: int | None,
           policy: Policy) -> tuple[list[Outcome], _Plan]:
    """Every row's outcome as ``workflow.add_unit`` / ``add_civil_servant`` would give it (the same validators,
    the same refusals), from what ``_Known`` read: nothing is written."""
    known = _Known(session, rows, default_unit_id)
    outcomes: list[Outcome] = []
    people: list[tuple[Outcome, dict]] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        out = Outcome(number, row.get("name", ""), (row.get("id_number") or "")[-4:], "failed")
        outcomes.append(out)
        try:
            id_number = (row.get("id_number") or "").strip().upper()
            if id_number in seen:
                raise ValidationError(f"身份证号与第 {seen[id_number]} 行重复")
            seen[id_number] = number
            contact = _contact(row)
            unit = known.unit_for(row, default_unit_id, policy)
            out.unit = unit.name
            fields = civil_servant_fields(row.get("name", ""), id_number, row.get("department"),
                                          row.get("position"), contact)
            existing = known.people.get(fields["id_number"])
            if existing is not None:
                check_same_person(existing, fields["name"], unit.id)
                out.result = "existing"
                continue
            people.append((out, {**fields, "unit": unit, "created_by": actor.name}))
            out.result = "created"
        except PkiError as exc:
            out.message = exc.public_message
    return outcomes, _Plan(known.new, people)


def _write(session, actor: Actor, plan: _Plan) -> None:
    """The plan in the caller's (short) write transaction: the new units, then every person with one
    multi-row INSERT, and their audit rows (``ra.unit.add``, ``ra.civil_servant.add``, as ``workflow`` writes
    them). A person or unit that someone registered since the checks read: ``_Undo`` (nothing is kept)."""
    connection = session.connection()
    usccs = [u.uscc for u in plan.units]
    numbers = [fields["id_number"] for _, fields in plan.people]
    taken = {u.uscc for u in select_in(connection, _UNITS_BY_USCC, usccs)}
    taken_people = {p.id_number for p in select_in(connection, _PEOPLE_BY_ID_NUMBER, numbers)}
    if taken or taken_people:
        for out, fields in plan.people:
            if fields["id_number"] in taken_people or getattr(fields["unit"], "uscc", None) in taken:
                out.result, out.message = "failed", "检查期间此人或其单位已被他人登记：请重新检查"
        raise _Undo
    for unit in plan.units:
        row = Unit(name=unit.name, uscc=unit.uscc, legal_representative=unit.legal_representative,
                   created_by=actor.name)
        session.add(row)
        session.flush()
        unit.id = row.id
        record(session, actor=actor.name, role=actor.role, action="ra.unit.add", target_type="ra_unit",
               target_id=row.id, uscc=unit.uscc, name=unit.name)
    values = [{**{k: v for k, v in fields.items() if k != "unit"}, "unit_id": fields["unit"].id}
              for _, fields in plan.people]
    ids = []
    for i in range(0, len(values), IN_CHUNK):
        ids += session.scalars(insert(CivilServant).returning(CivilServant.id, sort_by_parameter_order=True),
                               values[i:i + IN_CHUNK]).all()
    record_many(session, ({"actor": actor.name, "role": actor.role, "action": "ra.civil_servant.add",
                           "target_type": "ra_civil_servant", "target_id": pid,
                           "detail": {"name": v["name"], "unit_id": v["unit_id"],
                                      "id_number_suffix": v["id_number"][-4:]}}
                          for pid, v in zip(ids, values)))


def run(db, actor: Actor, data: bytes, *, default_unit_id: int | None = None, commit: bool = True,
        policy: Policy = Policy()) -> tuple[list[Outcome], bool]:
    """Check every row, then register the people (and new units) all or nothing: (outcomes, written).
    ``written`` is True only when every row passed and ``commit`` was asked for; otherwise nothing is kept.

    The checks read (``reading``: on SQLite no writer lock, so other officers keep writing while a 5,000-row
    roster is checked); the writes are one short transaction afterwards that first makes sure no person or
    unit of the plan was registered meanwhile (else nothing is written and those rows say so). On PostgreSQL
    a registration racing that check fails the INSERT on the unique identity number: nothing is written
    either (``ConflictError``)."""
    rows = parse(data)
    if not rows:
        raise RosterError("the roster has no rows")
    with reading(db) as session:
        outcomes, plan = _check(session, actor, rows, default_unit_id, policy)
    if not commit or any(o.result == "failed" for o in outcomes):
        return outcomes, False
    try:
        with transaction(db) as session:
            _write(session, actor, plan)
    except _Undo:
        return outcomes, False
    except IntegrityError as exc:
        raise ConflictError("the change conflicts with a concurrent one; reload and retry") from exc
    return outcomes, True
