"""Shared fixtures: a real SM2 software token and a real SoftHSMv2 token, each in a temp directory.

python-pkcs11 loads a module once per process and the software token reads RACENTRE_SOFTTOKEN_DIR at
C_Initialize, so this process's token directory is fixed here, at import, before anything loads it.
Tests that need a fresh directory run the token in a subprocess.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _test_tmpdir() -> str | None:
    """Where the suite's temporary files go (this process's and its children's): RACENTRE_TEST_TMPDIR, else
    TMPDIR when set, else /dev/shm when it is a writable directory - tmpfs, where the software token's and
    SQLite's fsyncs (every key made, every commit) cost nothing - else the system's default."""
    chosen = os.environ.get("RACENTRE_TEST_TMPDIR") or os.environ.get("TMPDIR")
    if chosen:
        return chosen
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


if _test_tmpdir():
    os.environ["TMPDIR"] = tempfile.tempdir = _test_tmpdir()
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="racentre-tests-"))
SOFTTOKEN_DIR = _SESSION_DIR / "softtoken"
SOFTTOKEN_DIR.mkdir()
(SOFTTOKEN_DIR / "softtoken.conf").write_text("slots = 40\npbkdf2_iterations = 1000\nmax_pin_failures = 5\n")
os.environ["RACENTRE_SOFTTOKEN_DIR"] = str(SOFTTOKEN_DIR)
# the TSA issues nothing without [tsa] policy: the suite's sites (and their subprocesses) use OpenSSL's
# example "tsa_policy1", as the interop checks expect
from tests.constants import TEST_TSA_POLICY  # noqa: E402
os.environ.setdefault("RACENTRE_TSA_POLICY", TEST_TSA_POLICY)

from hsm import HsmConfig, KeyManager, SoftTokenConfig, init_token  # noqa: E402
from hsm.token import build_softtoken  # noqa: E402
from pkicore.secret import Secret  # noqa: E402
from tests.pgschema import empty_engine  # noqa: E402

USER_PIN = "user-pin-1234"
SO_PIN = "so-pin-5678"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


# ---------------------------------------------------------------------------- tiers (setup.cfg markers)
# Every test keeps running in CI (scripts/test.sh); `scripts/test.sh --fast` leaves out the marked tiers.
_SLOW_DIRS = ("tests/e2e/", "tests/interop/", "tests/unit/console/", "tests/unit/softtoken/")
# Unit tests that start interpreters or make RSA-4096 keys: seconds each, measured with --durations on the
# fast tier (issue 16: the fast tier runs well under a minute); CI runs them all the same.
_SLOW_TESTS = {
    "tests/unit/test_sqlite_writer_lock.py::test_processes_serialise_through_the_lock_file",
    "tests/unit/test_schema_guard.py::test_concurrent_upgrades_of_an_empty_schema_both_succeed",
    "tests/unit/test_schema_guard.py::test_commands_refuse_an_empty_schema",
    "tests/unit/test_schema_guard.py::test_commands_and_serve_refuse_an_older_schema",
    "tests/unit/test_schema_guard.py::test_commands_and_serve_refuse_a_newer_schema",
    "tests/unit/test_schema_guard.py::test_a_running_node_stops_serving_once_another_version_upgraded_the_schema",
    "tests/unit/seal/test_pades.py::test_bytes_reserved_never_too_small",
    "tests/unit/test_architecture.py::test_narrow_interfaces_and_lower_packages_load_nothing_of_the_app",
    "tests/unit/test_architecture.py::test_the_contract_fails_on_an_upward_import",
    "tests/unit/hsm/test_ensure_key.py::test_racing_processes_make_one_key_each",
    "tests/unit/test_worker_footprint.py::test_serving_modules_do_not_load_alembic_or_openpyxl",
    "tests/unit/hsm/test_softtoken_conf.py::test_the_token_runs_with_the_configured_slots",
}
_HSM_FIXTURES = {"softtoken_km", "softhsm_km", "any_km", "softtoken_config", "softhsm_config", "services"}


def pytest_collection_modifyitems(config, items):
    """Markers from what a test uses: ``postgres`` (a PostgreSQL parameter), ``java`` (Bouncy Castle),
    ``browser`` (Chromium), ``hsm`` (a PKCS#11 token), ``slow`` (end-to-end, interop, console site,
    C self-tests, and tests marked so by hand)."""
    for item in items:
        path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(v == "postgresql" for v in params.values()):
            item.add_marker(pytest.mark.postgres)
        source = _module_source(item)
        if "bouncycastle" in source or "require_bc" in source:
            item.add_marker(pytest.mark.java)
        if "browser" in path or "selenium" in source or "chromium" in source:
            item.add_marker(pytest.mark.browser)
        if _HSM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.hsm)
        if path.startswith(_SLOW_DIRS) or item.nodeid.split("[")[0] in _SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path, config):
    """A directory whose tests are all ``slow`` is not even imported when ``-m`` leaves out every slow
    test (``scripts/test.sh --fast``): its items would all be deselected, and importing them costs about
    a second of the fast tier's collection."""
    rel = Path(collection_path).resolve()
    if ROOT not in rel.parents:
        return None
    rel = rel.relative_to(ROOT).as_posix() + "/"
    if rel.startswith(_SLOW_DIRS) and _markexpr_leaves_out_slow(config):
        return True
    return None


def _markexpr_leaves_out_slow(config) -> bool:
    """Whether the ``-m`` expression is false for every test marked ``slow``, whatever its other markers
    (each identifier of the expression tried on and off). Anything unexpected: False (collect as usual)."""
    cached = getattr(config, "_racentre_leaves_out_slow", None)
    if cached is None:
        cached = config._racentre_leaves_out_slow = _leaves_out_slow(config.option.markexpr or "")
    return cached


def _leaves_out_slow(markexpr: str) -> bool:
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression
        expr = Expression.compile(markexpr)
        others = sorted(expr.idents() - {"slow"})
        if len(others) > 8:
            return False
        for values in itertools.product((False, True), repeat=len(others)):
            on = {"slow", *(name for name, value in zip(others, values) if value)}

            def matcher(name, /, _on=frozenset(on), **kwargs):
                if kwargs:
                    raise ValueError("marker arguments")
                return name in _on
            if expr.evaluate(matcher):
                return False
        return True
    except Exception:  # noqa: BLE001 - a private pytest API: on any doubt collect everything
        return False


_SOURCES: dict[str, str] = {}


def _module_source(item) -> str:
    key = str(item.fspath)
    if key not in _SOURCES:
        try:
            _SOURCES[key] = Path(key).read_text(encoding="utf-8")
        except OSError:
            _SOURCES[key] = ""
    return _SOURCES[key]


@pytest.fixture(scope="session")
def softtoken_module() -> str:
    return str(build_softtoken())


@pytest.fixture(scope="session")
def softtoken_config(softtoken_module) -> HsmConfig:
    config = HsmConfig(module=softtoken_module, token="racentre-test", pin=Secret(USER_PIN),
                       softtoken=SoftTokenConfig(dir=str(SOFTTOKEN_DIR)))
    init_token(config, Secret(SO_PIN), Secret(USER_PIN))
    return config


@pytest.fixture(scope="session")
def softtoken_km(softtoken_config):
    km = KeyManager(softtoken_config)
    yield km
    km.close()


@pytest.fixture(scope="session")
def softhsm_config() -> HsmConfig:
    if not Path(SOFTHSM_MODULE).is_file():
        pytest.skip("SoftHSMv2 not installed (apt-get install softhsm2)")
    conf_dir = _SESSION_DIR / "softhsm"
    (conf_dir / "tokens").mkdir(parents=True)
    (conf_dir / "softhsm2.conf").write_text(f"directories.tokendir = {conf_dir / 'tokens'}\n")
    os.environ["SOFTHSM2_CONF"] = str(conf_dir / "softhsm2.conf")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "racentre-test",
                    "--so-pin", SO_PIN, "--pin", USER_PIN], check=True, capture_output=True)
    return HsmConfig(module=SOFTHSM_MODULE, token="racentre-test", pin=Secret(USER_PIN))


@pytest.fixture(scope="session")
def softhsm_km(softhsm_config):
    km = KeyManager(softhsm_config)
    yield km
    km.close()


@pytest.fixture(params=["softtoken", "softhsm2"], scope="session")
def any_km(request):
    """The same tests against our token and SoftHSMv2 (algorithms both have: RSA, ECDSA, AES)."""
    return request.getfixturevalue({"softtoken": "softtoken_km", "softhsm2": "softhsm_km"}[request.param])


@pytest.fixture(params=["sqlite", "postgresql"], scope="session")
def db(request, tmp_path_factory):
    """A session factory on a fresh schema: SQLite in a temp file, and PostgreSQL (CI: 127.0.0.1:5432,
    database test) in a schema of its own that is dropped afterwards."""
    from store.db import Base, make_session_factory
    from racentre.migrate import import_models
    import_models()
    with empty_engine(request.param, tmp_path_factory.mktemp("db"), "racentre") as engine:
        Base.metadata.create_all(engine)
        yield make_session_factory(engine)


def run_python(code: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run a snippet in a fresh interpreter (own PKCS#11 module state, own token directory)."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(Path(os.sys.executable)), "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)
