"""[tsa] require_sync (on by default): no token while the kernel reports the clock unsynchronised or bounds
its error above the accuracy tokens claim — an RFC 3161 rejection with failInfo timeNotAvailable over
/tsa, 503 + Retry-After on the REST side (/tsa/health, in-process stamping behind a JSON endpoint). The
kernel status is injected (``ClockMonitor(status=...)``), so tests simulate either state on any machine."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from racentre.config import load_config
from timestamp.clock import ClockMonitor, ClockStatus, kernel_clock_status
from timestamp.config import TsaConfig
from timestamp.errors import TsaRejection
from timestamp.services import TsaService
from timestamp.tsa import TimeStampResp
from tests.unit.timestamp.test_views import QT, make_app
from tests.unit.timestamp.test_tsa import query

ROOT = Path(__file__).resolve().parents[3]
UNSYNC = ClockStatus(False, max_error_us=16_000_000, est_error_us=16_000_000, state=5,
                     detail="kernel reports the clock unsynchronised")


def service_with(config: TsaConfig, km, status: ClockStatus) -> TsaService:
    """The TSA as [tsa] builds it, with the kernel's answer replaced by ``status``."""
    clock = ClockMonitor(require_sync=config.require_sync, max_error_ms=config.error_bound_ms(),
                         status=lambda: status, status_ttl=0)
    return TsaService(config, km, clock=clock)


def test_defaults_require_sync_within_the_claimed_accuracy():
    config = TsaConfig()
    assert config.require_sync is True and config.accuracy_ms == 1000 and config.error_bound_ms() == 1000
    assert TsaConfig(accuracy_ms=2500).error_bound_ms() == 2500
    assert TsaConfig(accuracy_ms=0).error_bound_ms() == 1000
    assert TsaConfig(accuracy_ms=1000, max_error_ms=200).error_bound_ms() == 200
    assert load_config(None, environ={}).tsa.require_sync is True


def test_unsynchronised_clock_is_a_time_not_available_rejection(tsa_pki):
    config = dataclasses.replace(tsa_pki.config, require_sync=True)
    client = make_app(service_with(config, tsa_pki.km, UNSYNC)).test_client()
    reply = client.post("/tsa", data=query(), headers=QT)
    assert reply.status_code == 200                                     # RFC 3161 §3.4: a reply, not an HTTP error
    status = TimeStampResp.load(reply.data)["status"]
    assert status["status"].native == "rejection" and status["fail_info"].native == {"time_not_available"}
    assert "not synchronised" in status["status_string"].native[0]
    health = client.get("/tsa/health")
    assert health.status_code == 503 and health.headers["Retry-After"] == "30"
    assert health.get_json()["status"] == "unavailable" and "not synchronised" in health.get_json()["reason"]


def test_error_bound_above_the_accuracy_is_refused_within_it_granted(tsa_pki):
    config = dataclasses.replace(tsa_pki.config, require_sync=True)             # accuracy 1 s
    loose = ClockStatus(True, max_error_us=1_500_000)
    client = make_app(service_with(config, tsa_pki.km, loose)).test_client()
    status = TimeStampResp.load(client.post("/tsa", data=query(), headers=QT).data)["status"]
    assert status["fail_info"].native == {"time_not_available"}
    assert "1500 ms" in status["status_string"].native[0] and "1000 ms" in status["status_string"].native[0]
    assert client.get("/tsa/health").status_code == 503
    wider = dataclasses.replace(config, accuracy_ms=2000)                    # tokens that claim ±2 s
    client = make_app(service_with(wider, tsa_pki.km, loose)).test_client()
    assert TimeStampResp.load(client.post("/tsa", data=query(), headers=QT).data)["status"]["status"].native \
        == "granted"
    tight = ClockStatus(True, max_error_us=20_000)
    client = make_app(service_with(config, tsa_pki.km, tight)).test_client()
    assert TimeStampResp.load(client.post("/tsa", data=query(), headers=QT).data)["status"]["status"].native \
        == "granted"
    assert client.get("/tsa/health").status_code == 200


def test_in_process_stamping_refused_is_503_with_retry_after(tsa_pki):
    """A JSON endpoint stamping in process (as sealing does) answers 503 + Retry-After, never 400/500."""
    config = dataclasses.replace(tsa_pki.config, require_sync=True)
    service = service_with(config, tsa_pki.km, UNSYNC)
    app = make_app(service)

    @app.post("/stamp-digest")
    def stamp_digest():
        return service.authority.stamp_digest("sm3", b"\x00" * 32).hex()

    reply = app.test_client().post("/stamp-digest")
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "30"
    assert reply.get_json()["error"]["code"] == "time_unavailable"
    try:
        service.authority.stamp_digest("sm3", b"\x00" * 32)
    except TsaRejection as exc:
        assert exc.failure.value == "time_not_available"
    else:
        raise AssertionError("an unsynchronised clock granted a token")


def test_the_real_kernel_status_decides_with_the_defaults(tsa_pki):
    """No injection: whatever adjtimex says on this machine, the default TSA follows it."""
    kernel = kernel_clock_status()
    assert isinstance(kernel.synchronised, bool) and kernel.state is not None
    config = dataclasses.replace(tsa_pki.config, require_sync=True, max_error_ms=0)
    client = make_app(TsaService(config, tsa_pki.km)).test_client()
    status = TimeStampResp.load(client.post("/tsa", data=query(), headers=QT).data)["status"]
    usable = kernel.synchronised and (kernel.max_error_us or 0) <= 1_000_000
    assert (status["status"].native == "granted") == usable
    assert (client.get("/tsa/health").status_code == 200) == usable


def test_the_demo_turns_it_off_visibly():
    """scripts/demo.sh writes ``require_sync = false`` into its racentre.toml, under a comment saying why."""
    script = (ROOT / "scripts" / "demo.sh").read_text()
    toml = re.search(r"<<TOML\n(.*?)\nTOML\n", script, re.S).group(1)
    tsa = toml[toml.index("[tsa]"):]
    tsa = tsa[:tsa.index("\n[", 1)]
    assert re.search(r"^# DEMO ONLY:.*\n(#.*\n)*require_sync = false$", tsa, re.M), tsa
