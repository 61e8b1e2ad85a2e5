"""Contracts with the internals of kept libraries that our code reaches into (issue 16 §3). Each library
is pinned to one exact version in setup.cfg, and these tests fail loudly when an upgrade moves what we
use, naming the place in our code to look at:

* gunicorn (``racentre/arbiter.py`` ``FastPathThreadWorker`` subclasses the gthread worker and drives its
  connections, poller and keep-alive queue itself);
* pyHanko (``seal/pdf.py``: the private ``pyhanko.sign._session_scope.run_and_release``, the
  ``Signer._signed_attr_provider_spec`` override, ``TimeStamper._dummy_response_cache`` and
  ``EmbeddedPdfSignature._integrity_checked``; ``seal/anchor.py`` keeps its own content-stream tokenizer
  because pyHanko's parser refuses ' / " and inline images).
"""
from __future__ import annotations

import asyncio
import inspect
import io
import socket
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP_CFG = (ROOT / "setup.cfg").read_text()
GUNICORN = "27.0.1"
PYHANKO = "0.38.0"


def _params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


# ---------------------------------------------------------------------------------------------- gunicorn

def test_gunicorn_is_the_pinned_version():
    import gunicorn
    assert f"gunicorn=={GUNICORN}" in SETUP_CFG, "pin gunicorn exactly in setup.cfg (racentre/arbiter.py)"
    assert gunicorn.__version__ == GUNICORN == version("gunicorn"), \
        f"gunicorn {gunicorn.__version__} is not {GUNICORN}: re-check racentre/arbiter.py FastPathThreadWorker " \
        "against the new gthread worker, then update the pin and this test"


def test_gthread_worker_methods_the_fast_path_overrides_and_calls():
    from gunicorn.workers.gthread import TConn, ThreadWorker
    assert _params(ThreadWorker.load_wsgi) == ["self"]
    assert _params(ThreadWorker.on_client_socket_readable) == ["self", "conn", "client"]
    assert _params(ThreadWorker.wait_for_and_dispatch_events) == ["self", "timeout"]
    assert _params(ThreadWorker.handle_request) == ["self", "req", "conn"]
    assert _params(TConn.__init__) == ["self", "cfg", "sock", "client", "server"]
    assert "graceful" in _params(TConn.close) and _params(TConn.set_timeout) == ["self"]
    # on_client_socket_readable hands the connection to the pool; the keep-alive queue is a deque
    source = inspect.getsource(ThreadWorker.on_client_socket_readable)
    assert "self.poller.unregister(client)" in source and "self.keepalived_conns.remove(conn)" in source


def test_gthread_internals_the_request_gate_uses():
    """racentre/arbiter.py's request gate (racentre.httpgate) replaces accept and the keep-alive hand-off,
    hands complete requests to the pool through enqueue_req/handle, and reads finish_request's leftovers."""
    from gunicorn.http.unreader import SocketUnreader
    from gunicorn.workers.gthread import ThreadWorker
    assert _params(ThreadWorker.accept) == ["self", "listener"]
    assert _params(ThreadWorker.enqueue_req) == ["self", "conn"]
    assert _params(ThreadWorker.handle) == ["self", "conn"]
    assert _params(ThreadWorker.finish_request) == ["self", "conn", "fs"]
    assert "force" in _params(ThreadWorker.murder_keepalived)
    assert _params(SocketUnreader.chunk)[:2] == ["self", "size_hint"] and "take_buffered" in dir(SocketUnreader)
    # handle() skips its 5-second wait for a first byte when data_ready is set, and starts by conn.init()
    handle = inspect.getsource(ThreadWorker.handle)
    assert "conn.data_ready" in handle and "conn.init()" in handle and "next(conn.parser)" in handle
    # finish_request re-queues a connection whose parser holds read-ahead bytes, else polls it (keep-alive)
    finish = inspect.getsource(ThreadWorker.finish_request)
    assert "conn.parser.unreader.buf.getvalue()" in finish and "self.on_client_socket_readable" in finish
    # the run loop murders kept-alive connections each turn (the gate expires its own there), and keeps
    # dispatching events while connections are open at shutdown (an OCSP batch in flight is answered)
    run = inspect.getsource(ThreadWorker.run)
    assert "self.murder_keepalived()" in run and "while self.nr_conns > 0" in run
    # the batch thread's answers come back to the main thread through the method queue (_dispatch_waiting)
    from gunicorn.workers.gthread import PollableMethodQueue
    assert _params(PollableMethodQueue.defer) == ["self", "callback", "args"]
    assert "self.method_queue.run_callbacks" in run


def test_gthread_worker_state_the_fast_path_reads_and_writes(tmp_path):
    from gunicorn.config import Config
    from gunicorn.workers.gthread import TConn, ThreadWorker
    cfg = Config()
    cfg.set("worker_tmp_dir", str(tmp_path))
    worker = ThreadWorker(0, 1, [], None, 30, cfg, log=None)
    for name in ("nr", "max_requests", "alive", "keepalived_conns", "max_keepalived", "nr_conns", "poller", "cfg"):
        assert hasattr(worker, name), f"ThreadWorker.{name} is gone (racentre/arbiter.py _send_inline)"
    assert worker.keepalived_conns.__class__.__name__ == "deque" and worker.nr == 0
    for name in ("is_ssl", "keepalive", "accesslog", "proxy_protocol", "http2_cleartext"):
        assert hasattr(cfg, name), f"gunicorn Config.{name} is gone (racentre/arbiter.py load_wsgi)"
    a, b = socket.socketpair()
    try:
        conn = TConn(cfg, a, ("127.0.0.1", 1), ("127.0.0.1", 2))
        assert conn.initialized is False and conn.is_http2 is False and conn.parser is None and conn.sock is a
    finally:
        a.close()
        b.close()


def test_gunicorn_request_and_unreader_the_fast_path_uses():
    from gunicorn import SERVER, util
    from gunicorn.config import Config
    from gunicorn.http.parser import RequestParser
    from gunicorn.http.unreader import Unreader
    assert SERVER == "gunicorn"
    assert util.unquote_to_wsgi_str("/tsa/a%20b") == "/tsa/a b"
    assert util.http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    raw = b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nContent-Length: 2\r\n\r\nab"
    req = next(RequestParser(Config(), iter([raw]), ("127.0.0.1", 1)))
    assert (req.method, req.path, req.version) == ("POST", "/tsa", (1, 1))
    assert ("CONTENT-LENGTH", "2") in req.headers and req.body.read() == b"ab" and req.should_close() is False
    unreader = Unreader()
    assert isinstance(unreader.buf, io.BytesIO) and not unreader.buf.getvalue()
    unreader.unread(b"GET / HTTP/1.1\r\n")
    assert unreader.buf.getvalue() == b"GET / HTTP/1.1\r\n"


# ----------------------------------------------------------------------------------------------- pyHanko

def test_pyhanko_is_the_pinned_version():
    assert f"pyhanko=={PYHANKO}" in SETUP_CFG
    assert version("pyHanko") == PYHANKO, \
        f"pyHanko {version('pyHanko')} is not {PYHANKO}: re-check the private APIs seal/pdf.py uses " \
        "(this module's docstring), then update the pin and this test"


def test_run_and_release_awaits_and_returns():
    from pyhanko.sign._session_scope import run_and_release

    async def answer():
        return 42
    assert inspect.iscoroutinefunction(run_and_release)
    assert asyncio.run(run_and_release(answer(), None)) == 42


def test_signed_attribute_spec_hook_is_still_called_by_the_signer():
    from pyhanko.sign import signers
    assert _params(signers.Signer._signed_attr_provider_spec) == [
        "self", "attr_settings", "timestamper", "use_cades", "is_pdf_sig"]
    # seal.pdf.HsmSigner overrides it so that ESSCertIDv2 uses SM3 for SM2 keys: pyHanko must still ask it
    assert "self._signed_attr_provider_spec(" in inspect.getsource(signers.Signer)


def test_timestamper_dummy_cache_and_integrity_flag():
    from pyhanko.sign.timestamps.api import TimeStamper
    from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
    stamper = TimeStamper()
    assert stamper._dummy_response_cache == {}         # seal.pdf.InProcessTimeStamper.forget_sizing_tokens
    assert "self._dummy_response_cache" in inspect.getsource(TimeStamper._ensure_dummy)
    init = inspect.getsource(EmbeddedPdfSignature.__init__)
    compute = inspect.getsource(EmbeddedPdfSignature.compute_integrity_info)
    assert "self._integrity_checked = False" in init and "self._integrity_checked = True" in compute


@pytest.mark.parametrize("content, what", [
    (b"BT /F1 12 Tf 14 TL 72 700 Td (first) Tj (Bureau) ' ET", "the ' operator"),
    (b"BT /F1 12 Tf 72 700 Td 1 2 (Bureau) \" ET", 'the " operator'),
    (b"q BI /W 1 /H 1 /BPC 8 /CS /G ID \x00 EI Q BT /F1 12 Tf (Bureau) Tj ET", "an inline image"),
])
def test_pyhanko_content_stream_parser_still_refuses_what_seal_anchor_needs(content, what):
    """Why seal/anchor.py keeps its own tokenizer. When this fails, pyHanko reads ``what``: switch the
    anchor reader to ``parse_content_stream`` and drop this test."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.content_stream_parser import parse_content_stream
    from pyhanko.pdf_utils.misc import PdfError
    stream = generic.StreamObject(stream_data=content)
    stream.container_ref = generic.Reference(4, 0)
    with pytest.raises(PdfError):
        list(parse_content_stream([stream]))
