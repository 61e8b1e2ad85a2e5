"""批量导入: how long a 5,000-row roster import holds the write transaction (on SQLite the writer lock, which
every other writer of the site waits for), for this version's ``racentre.console.roster`` and for another
version's file given with ``--old FILE`` (e.g. ``git show main~1:racentre/console/roster.py > old.py``).

Measures each write transaction from BEGIN to COMMIT/ROLLBACK (SQLAlchemy engine events): wall time and this
process's CPU time (user+sys) inside it, and the whole import's CPU time. Single-threaded: the CPU figures do
not depend on the box's load, the wall figures do.

    PYTHONPATH=. .venv/bin/python bench/roster_lock.py [--rows 5000] [--db sqlite|postgresql] [--old old.py]
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event, func, select

from racentre.migrate import import_models
from ra.models import CivilServant
from ra.workflow import Actor, add_unit
from store.db import READ_ONLY, Base, make_engine, make_session_factory, transaction

ROOT = Path(__file__).resolve().parent.parent


def id_numbers(count: int) -> list[str]:
    """``count`` distinct valid GB 11643 identity numbers."""
    out = []
    for i in range(count):
        body = "330106" + f"{1960 + i % 40}{i // 40 % 12 + 1:02d}{i // 480 % 28 + 1:02d}" + f"{i % 997:03d}"
        total = sum(int(d) * (2 ** (17 - k) % 11) for k, d in enumerate(body))
        out.append(body + "10X98765432"[total % 11])
    assert len(set(out)) == count
    return out


def roster_csv(count: int) -> bytes:
    lines = ["姓名,身份证号,部门,职务,手机,邮箱"]
    for i, number in enumerate(id_numbers(count)):
        lines.append(f"张{i:05d},{number},办公室,科员,139{i:08d},p{i}@example.cn")
    return "\n".join(lines).encode("utf-8")


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _engine(kind: str, directory: Path):
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{directory / 'bench.db'}")
        yield engine
        engine.dispose()
        return
    from tests.pgschema import schema_engine       # a throw-away schema, dropped afterwards
    with schema_engine("roster_bench") as engine:
        yield engine


def measure(module, kind: str, rows: int) -> dict:
    with _engine(kind, Path(tempfile.mkdtemp(prefix="roster-bench-"))) as engine:
        return _measure(module, engine, rows)


def _measure(module, engine, rows: int) -> dict:
    from tests.unit.ra.helpers import uscc
    import_models()
    Base.metadata.create_all(engine)
    db = make_session_factory(engine)
    actor = Actor("bench-operator", "ra_operator")
    with transaction(db) as session:
        unit, _ = add_unit(session, actor, name="杭州市测试局", uscc=uscc(), legal_representative="王五")
        unit_id = unit.id
    data = roster_csv(rows)
    spans, opened = [], {}

    @event.listens_for(engine, "begin")
    def _begin(conn):
        if not conn.get_execution_options().get(READ_ONLY):
            opened[id(conn)] = (time.perf_counter(), time.process_time())

    def _end(conn):
        start = opened.pop(id(conn), None)
        if start is not None:
            spans.append((time.perf_counter() - start[0], time.process_time() - start[1]))

    event.listen(engine, "commit", _end)
    event.listen(engine, "rollback", _end)
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes, written = module.run(db, actor, data, default_unit_id=unit_id, commit=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    with db() as session:
        stored = session.scalar(select(func.count()).select_from(CivilServant))
    assert written and stored == rows, (written, stored, [o.message for o in outcomes if o.message][:3])
    return {"import_wall_s": wall, "import_cpu_s": cpu, "write_transactions": len(spans),
            "longest_write_wall_s": max(s[0] for s in spans), "longest_write_cpu_s": max(s[1] for s in spans)}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--old", type=Path, default=None, help="another version's roster.py to compare with")
    args = parser.parse_args()
    from racentre.console import roster
    versions = [("this version", roster)] + ([("--old", _module(args.old, "roster_old"))] if args.old else [])
    for label, module in versions:
        figures = measure(module, args.db, args.rows)
        print(f"{label:12s} {args.db} {args.rows} rows: " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
