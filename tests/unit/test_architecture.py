"""The seams (issue 16 §1): the layers pkicore < access < {hsm, gmt0014} < {ca_bridge, kms, timestamp,
seal} < ra < racentre, with no import cycle inside a package, checked by import-linter over the
contracts in setup.cfg; every package of the distribution is under those contracts; package
``__init__``s import no blueprint or CLI, so importing a narrow interface loads nothing of the app.
"""
from __future__ import annotations

import ast
import re
import configparser
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
SETUP_CFG = ROOT / "setup.cfg"


def _config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_import_linter_contracts_are_kept(monkeypatch):
    """Any upward import (a domain package importing the shell, pkicore importing anything of ours, ...)
    or a cycle between the modules of a package fails here, naming the import chain."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    # import-linter configures logging (dictConfig, which disables every logger that exists): put the
    # loggers back as they were, or a later test's caplog sees nothing of e.g. "seal.pdf"
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    state = [(lg, lg.disabled, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    root = (logging.root.level, list(logging.root.handlers))
    try:
        assert lint_imports(config_filename=str(SETUP_CFG), no_cache=True, no_logo=True) == 0
    finally:
        for lg, disabled, level, propagate, handlers in state:
            lg.disabled, lg.level, lg.propagate, lg.handlers[:] = disabled, level, propagate, handlers
        logging.root.setLevel(root[0])
        logging.root.handlers[:] = root[1]


def test_every_package_is_under_the_contracts():
    """A new top-level package (setup.cfg [options.packages.find]) must take its place in the layers."""
    config = _config()
    packages = {p.rstrip("*") for p in _lines(config["options.packages.find"]["include"])}
    roots = set(_lines(config["importlinter"]["root_packages"]))
    layered = {name.strip() for layer in _lines(config["importlinter:contract:layers"]["layers"])
               for name in layer.replace(":", "|").split("|")}
    assert packages == roots, f"packages without contracts: {packages - roots}; unknown roots: {roots - packages}"
    assert roots == {name.strip("()") for name in layered}, "every root package is one layer or one sibling"


def test_the_contract_fails_on_an_upward_import(tmp_path):
    """The same contracts over a copy of our package names in which pkicore imports the RA: broken.
    (So a mis-typed layers section cannot pass vacuously.)"""
    config = _config()
    for name in _lines(config["importlinter"]["root_packages"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "pkicore" / "leak.py").write_text("import ra\n")
    contracts = "\n".join(f"[{section}]\n" + "\n".join(f"{k} =\n    " + "\n    ".join(_lines(v)) if "\n" in v else
                                                         f"{k} = {v}" for k, v in config[section].items())
                          for section in config.sections() if section.startswith("importlinter:contract:layers")
                          or section == "importlinter")
    (tmp_path / "setup.cfg").write_text(contracts + "\n")
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                          "sys.exit(lint_imports(config_filename='setup.cfg', no_cache=True, no_logo=True))"],
                         cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "BROKEN" in run.stdout and "pkicore.leak -> ra" in run.stdout


def _loaded_after(*statements: str) -> list[set[str]]:
    """The modules loaded by each statement, each in a fresh interpreter (run side by side)."""
    runs = [subprocess.Popen([sys.executable, "-c", f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"],
                             cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for statement in statements]
    out = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
        out.append(set(stdout.split()))
    return out


def _top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_narrow_interfaces_and_lower_packages_load_nothing_of_the_app():
    """``import ca_bridge.api`` (what the RA programs against) loads no Flask, click, KMC, GM/T 0014
    client, blueprint, CLI or the app shell (its configuration included); the access rules, the GM/T
    0014 client, the RA's engine and the KMC never pull in the shell or a package above them."""
    api, access, protocol, ra, kms = _loaded_after("import ca_bridge.api", "import access.auth",
                                                   "import gmt0014.client", "import ra.services, ra.workflow",
                                                   "import kms.services")
    shell = {"flask", "werkzeug", "click", "kms", "gmt0014", "racentre", "ra", "hsm", "pkcs11"}
    assert not _top(api) & shell, sorted(m for m in api if _top({m}) & shell)
    assert not {"ca_bridge.views", "ca_bridge.cli", "ca_bridge.embedded", "racentre.config"} & api
    assert "racentre" not in _top(access)
    assert not _top(protocol) & {"racentre", "kms", "ca_bridge", "hsm", "flask", "click"}
    assert not _top(ra) & {"racentre", "flask", "click"}
    assert not _top(kms) & {"racentre", "ca_bridge", "flask", "click"}


def test_package_inits_import_no_blueprint_or_cli():
    """An ``__init__`` that imports its package's views or CLI makes every import of the package load
    Flask and click (and was how ``ca_bridge`` <-> ``ca_bridge.embedded`` came to depend on import order)."""
    for name in _lines(_config()["importlinter"]["root_packages"]):
        tree = ast.parse((ROOT / name / "__init__.py").read_text())
        for node in ast.walk(tree):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [f"{node.module}.{a.name}" if node.module else a.name for a in node.names]
                       if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                parts = set(module.split("."))
                assert not parts & {"views", "cli", "flask", "click", "app", "web"}, f"{name}/__init__.py imports {module}"


def test_serving_and_cli_wiring_comes_from_the_composition_root():
    """No package reaches for another's service by importlib/getattr glue or an ``init_app`` of its
    own: the blueprints are wired by racentre.app over racentre.services.Services. (The shell itself
    still loads modules by name where that is its job: the models for the migrations, the worker app.)"""
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {"tests", "bench", ".venv", "scripts"} or "migrations" in rel.parts:
            continue
        text = path.read_text()
        if "_kms_kmc" in text or "from_services" in text or \
                ("importlib.import_module" in text and rel.parts[0] != "racentre"):
            offenders.append(str(rel))
        if rel.name == "views.py" and rel.parts[0] != "racentre" and "def init_app" in text:
            offenders.append(str(rel))
    assert offenders == [], textwrap.shorten(", ".join(offenders), 300)


def test_readme_layout_table_matches_the_tree():
    """Every package is in the README's layout table at its layer, and every path the table names exists."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Layout"):text.index("\n## ", text.index("## Layout") + 1)]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ") and "`" in line]
    listed = {}
    for layer, package, holds in rows:
        name = package.strip().strip("`").rstrip("/")
        listed[name] = layer.strip()
        assert (ROOT / name).is_dir(), name
        for path in re.findall(r"`([\w/]+\.(?:py|toml|c))`", holds):
            top = name.split("/")[0]
            candidates = [ROOT / path, ROOT / name / path, ROOT / top / path]
            assert any(p.exists() or list(p.parent.glob(p.name)) for p in candidates), f"{name}: {path}"
    layers = _lines(_config()["importlinter:contract:layers"]["layers"])[::-1]       # lowest first
    order = {pkg.strip(): i for i, layer in enumerate(layers) for pkg in layer.replace(":", "|").split("|")}
    for package, i in order.items():
        assert package in listed, f"{package} is missing from the README layout table"
        assert listed[package] == str(i + 1), f"{package}: layer {listed[package]} in the README, {i + 1} in setup.cfg"
