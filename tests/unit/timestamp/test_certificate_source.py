"""TsaService over a certificate source (a site's: the database): while a unit has no certificate the TSA
answers systemFailure and asks the source again (at most every ``retry_seconds``), so a node serves as
soon as the certificate exists; a certificate for another key is refused; a refresh that fails keeps the
units that serve."""
from __future__ import annotations

import hashlib

import pytest

from timestamp.errors import TsaError
from timestamp.services import TsaService, certificate_files


class Source:
    """The files of the tsa_pki fixture, switched on and off like a database that gains a certificate."""

    def __init__(self, config, present: bool):
        self.files, self.present, self.calls = certificate_files(config), present, 0

    def __call__(self, unit, spki):
        self.calls += 1
        if self.present is None:
            raise RuntimeError("database unreachable")
        return self.files(unit, spki) if self.present else None


def _stamp(service: TsaService) -> bytes:
    return service.authority.stamp_digest("sm3", hashlib.new("sm3", b"x").digest())


def test_a_certificate_issued_later_is_taken_up_without_a_restart(tsa_pki):
    source = Source(tsa_pki.config, present=False)
    service = TsaService(tsa_pki.config, tsa_pki.km, certificates=source)
    service.retry_seconds = 0.0
    with pytest.raises(TsaError, match="no certificate for its key yet"):
        service.authority
    source.present = True                  # `racentre setup` ran on another node
    assert _stamp(service)
    calls = source.calls
    _stamp(service)
    assert source.calls == calls           # cached until refresh_seconds


def test_retries_are_throttled(tsa_pki):
    source = Source(tsa_pki.config, present=False)
    service = TsaService(tsa_pki.config, tsa_pki.km, certificates=source)
    for _ in range(5):
        with pytest.raises(TsaError):
            service.authority
    assert source.calls == 1               # one look per retry_seconds (2 s), not one per query


def test_setup_in_this_process_is_taken_up_at_once(tsa_pki):
    """``retry_now`` (called by ``racentre setup`` after issuing TSA certificates): the next use builds
    the TSA without waiting out the retry period; an authority already built is left as it is."""
    source = Source(tsa_pki.config, present=False)
    service = TsaService(tsa_pki.config, tsa_pki.km, certificates=source)
    with pytest.raises(TsaError):
        service.authority
    source.present = True
    with pytest.raises(TsaError):          # within retry_seconds: the failure is remembered
        service.authority
    service.retry_now()
    assert _stamp(service)
    calls = source.calls
    service.retry_now()                    # built: nothing is rebuilt
    _stamp(service)
    assert source.calls == calls


def test_a_failed_refresh_keeps_serving(tsa_pki):
    source = Source(tsa_pki.config, present=True)
    service = TsaService(tsa_pki.config, tsa_pki.km, certificates=source)
    first = service.authority
    service.refresh_seconds = 0.0
    source.present = None                  # the database goes away
    assert service.authority is first and _stamp(service)


def test_a_certificate_for_another_key_is_refused(tsa_pki):
    files = certificate_files(tsa_pki.config)
    service = TsaService(tsa_pki.config, tsa_pki.km, certificates=lambda unit, spki: files("ecdsa", spki))
    with pytest.raises(TsaError, match="not for the key"):
        service.authority
