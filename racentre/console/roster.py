"""批量导入: a roster of civil servants (XLSX, the first worksheet, or CSV in UTF-8 or GB 18030) with Chinese
column headers as Chinese offices keep them (姓名, 身份证号, 单位, 统一社会信用代码, 法定代表人, 部门, 职务, 手机,
邮箱), checked row by row and written all or nothing: one transaction; any refused row rolls the whole
import back, and "check only" always does. Each row gets its outcome (新增 / 已登记 / the reason).

Units are found by 统一社会信用代码 (registered if new and the row names 单位 and 法定代表人), else by the exact
单位 name, else the unit chosen on the form. 手机 and 邮箱 go into the person's contact field.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass

from sqlalchemy import select

from store.db import transaction
from pkicore.errors import PkiError
from ra import workflow
from ra.errors import ValidationError
from ra.models import Unit
from ra.workflow import Actor, Policy
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


def _unit_for(session, actor: Actor, row: dict, default_unit_id: int | None, policy: Policy) -> Unit:
    if row.get("uscc"):
        uscc = row["uscc"].strip().upper()
        found = session.scalar(select(Unit).where(Unit.uscc == uscc))
        if found is not None:
            if row.get("unit_name") and row["unit_name"] != found.name:
                raise ValidationError(f"统一社会信用代码 {uscc} 登记的单位是 {found.name}，与本行的单位 {row['unit_name']} 不符")
            return found
        if not row.get("unit_name") or not row.get("legal_representative"):
            raise ValidationError(f"统一社会信用代码 {uscc} 的单位尚未登记：登记新单位需填写 单位 和 法定代表人")
        return workflow.add_unit(session, actor, name=row["unit_name"], uscc=uscc,
                                 legal_representative=row["legal_representative"], policy=policy)[0]
    if row.get("unit_name"):
        found = list(session.scalars(select(Unit).where(Unit.name == row["unit_name"]).limit(2)))
        if len(found) == 1:
            return found[0]
        if found:
            raise ValidationError(f"有多个名为 {row['unit_name']} 的单位：请填写统一社会信用代码")
        raise ValidationError(f"单位 {row['unit_name']} 尚未登记：请填写统一社会信用代码和法定代表人")
    if default_unit_id is None:
        raise ValidationError("本行没有单位：请在名册中填写单位，或在表单中选择单位")
    unit = session.get(Unit, default_unit_id)
    if unit is None:
        raise ValidationError(f"unit {default_unit_id} not found")
    return unit


class _Undo(Exception):
    """Rolls the import's transaction back (check only, or a row refused)."""


def run(db, actor: Actor, data: bytes, *, default_unit_id: int | None = None, commit: bool = True,
        policy: Policy = Policy()) -> tuple[list[Outcome], bool]:
    """Check every row and register the people (and new units) in one transaction: (outcomes, written).
    ``written`` is True only when every row passed and ``commit`` was asked for; otherwise nothing is kept.

    Each row's checks run before it writes anything (``workflow.add_unit`` / ``add_civil_servant`` refuse
    before they add), so a refused row leaves the transaction usable for the next row's check."""
    rows = parse(data)
    if not rows:
        raise RosterError("the roster has no rows")
    outcomes: list[Outcome] = []
    seen: dict[str, int] = {}
    try:
        with transaction(db) as session:
            for number, row in rows:
                out = Outcome(number, row.get("name", ""), (row.get("id_number") or "")[-4:], "failed")
                outcomes.append(out)
                try:
                    id_number = (row.get("id_number") or "").strip().upper()
                    if id_number in seen:
                        raise ValidationError(f"身份证号与第 {seen[id_number]} 行重复")
                    seen[id_number] = number
                    contact = _contact(row)
                    unit = _unit_for(session, actor, row, default_unit_id, policy)
                    out.unit = unit.name
                    _, created = workflow.add_civil_servant(
                        session, actor, name=row.get("name", ""), id_number=id_number, unit_id=unit.id,
                        department=row.get("department") or None, position=row.get("position") or None,
                        contact=contact)
                    out.result = "created" if created else "existing"
                except PkiError as exc:
                    out.message = exc.public_message
            if not commit or any(o.result == "failed" for o in outcomes):
                raise _Undo
    except _Undo:
        return outcomes, False
    return outcomes, True
