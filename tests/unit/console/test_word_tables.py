"""One word per key: the console's message tables (the base table, the lifecycle block in i18n.py and the
counter pages' i18n_desk.py) are merged with setdefault, so a key defined twice would silently show
whichever table was merged first."""
from __future__ import annotations

import ast
from pathlib import Path

from racentre.console import i18n_desk

I18N = Path(__file__).resolve().parents[3] / "racentre" / "console" / "i18n.py"


def _tables() -> dict[str, dict]:
    tables = {}
    for node in ast.parse(I18N.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if getattr(target, "id", "") in ("MESSAGES", "_LIFECYCLE"):
                tables[target.id] = ast.literal_eval(node.value)
    tables["i18n_desk"] = i18n_desk.MESSAGES
    return tables


def test_no_key_is_defined_in_two_tables():
    tables = _tables()
    assert set(tables) == {"MESSAGES", "_LIFECYCLE", "i18n_desk"}
    names = sorted(tables)
    for lang in ("zh", "en"):
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = set(tables[a].get(lang, {})) & set(tables[b].get(lang, {}))
                assert not both, f"{lang}: {sorted(both)} defined in both {a} and {b}"
