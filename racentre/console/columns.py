"""The column headers a roster may use (批量导入 and the background import job): Chinese as Chinese offices
keep their rosters, or the English field names."""
from __future__ import annotations

HEADERS = {
    "name": ("姓名", "name"),
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "证件号码", "id_number"),
    "unit_name": ("单位", "单位名称", "工作单位", "unit"),
    "uscc": ("统一社会信用代码", "信用代码", "uscc"),
    "legal_representative": ("法定代表人", "legal_representative"),
    "department": ("部门", "处室", "department"),
    "position": ("职务", "岗位", "position"),
    "mobile": ("手机", "手机号", "手机号码", "mobile"),
    "email": ("邮箱", "电子邮箱", "email"),
    "contact": ("联系方式", "contact"),
}
_ALIASES = {alias.lower(): key for key, aliases in HEADERS.items() for alias in aliases}


def column_key(header: str) -> str | None:
    """The field a column header names (Chinese or English, as in HEADERS), or None."""
    return _ALIASES.get(header.strip().lower())
