"""The hot paths in front of Flask: a package registers a handler for its first path segment ("tsa",
"ocsp"), and requests the handler takes are answered without Flask's routing, request and response
objects — by this WSGI middleware, and by ``racentre.arbiter.FastPathThreadWorker`` straight from
gunicorn's parsed (or peeked) request. A handler's ``answer(method, path, content_type, length, read)``
gets the PATH_INFO-style path (percent-decoded) and returns ``(content type, body)`` — or ``(content type,
body, ((header, value), ...))`` with further response headers — for a 200 answer, calling ``read(n)`` once
for a body; or None, with nothing read, when the request belongs to the Flask
app and its error handling (the answer must then be what the Flask view gives; tests hold them equal).

A *buffered* handler (one with ``answer_buffered``; the trust services' verification, whose answer depends
on the body and the bearer token) may decline after seeing the body: it says from the request line alone
whether it ``wants(method, path, content type, length)`` the request, then ``answer_buffered(requests)``
gets ``(method, path, query, content type, authorization, body)`` each and returns one reply or None each;
for a declined request the body is handed on to Flask unchanged.

A conditional request (If-None-Match, If-Modified-Since: RFC 7232) always goes to the app, which may answer
304; the hot paths answer 200 only."""
from __future__ import annotations

import io
from typing import Callable, Protocol, Sequence


class FastHandler(Protocol):
    def answer(self, method: str, path: str, content_type: str, length: str,
               read: Callable[[int], bytes]) -> tuple[str, bytes] | None: ...

    # optional: ``max_body``, the largest body the handler's paths accept (a larger one is refused with 413
    # as soon as its length is known: ``racentre.httpgate``)
    # optional: ``answer_many(requests)`` for requests that arrived together, ``(method, path, content
    # type, length, body)`` each -> one ``answer`` result each (e.g. one database read for all of them)
    # optional: ``blocking = True`` when its answers wait on something outside the process (the database):
    # the serving worker then does that waiting off its main thread (``racentre.arbiter``), never stalling
    # the reading of other requests; with ``stage_many(requests)`` -> an object with ``read()`` (may block),
    # ``answers()`` (no I/O: the ``answer_many`` results), ``writes()`` (whether ``write`` has work) and
    # ``write()`` (may block; the answers are sent after it), only ``read`` and ``write`` run off the main
    # thread, else the whole ``answer_many``; the object may also offer ``read_nowait()`` (``Staged``), a
    # read the main thread does or waits for on its poller without blocking
    # or, instead of ``answer``: ``wants`` and ``answer_buffered`` (module docstring)


class FastPaths:
    """WSGI middleware dispatching on the first path segment to the registered handlers."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.handlers: dict[str, FastHandler] = {}

    def _handler(self, path: str) -> FastHandler | None:
        end = path.find("/", 1)
        return self.handlers.get(path[1:end] if end > 0 else path[1:]) if path.startswith("/") else None

    def body_limit(self, path: str) -> int | None:
        """The body limit of the handler of ``path`` (its ``max_body``), or None."""
        handler = self._handler(path)
        return getattr(handler, "max_body", None)

    def blocking(self, path: str) -> bool:
        """Whether the handler of ``path`` says its answers may wait on the database (its ``blocking``)."""
        return bool(getattr(self._handler(path), "blocking", False))

    def answer(self, method: str, path: str, content_type: str, length: str,
               read: Callable[[int], bytes]) -> tuple[str, bytes] | None:
        """A reply from the handler of ``path``, or None. Buffered handlers answer in ``__call__`` (where
        a declined body can be handed on), never here."""
        handler = self._handler(path)
        if handler is None or hasattr(handler, "answer_buffered"):
            return None
        return handler.answer(method, path, content_type, length, read)

    def answer_many(self, requests: Sequence[tuple]) -> list[tuple[str, bytes] | None]:
        """``answer`` for requests that arrived together (``(method, path, content type, length, body[,
        authorization])`` each), handed to each handler's ``answer_many`` (or ``answer_buffered``) when it
        has one."""
        out: list[tuple[str, bytes] | None] = [None] * len(requests)
        groups: dict[int, tuple[FastHandler, list[int]]] = {}
        for i, request in enumerate(requests):
            handler = self._handler(request[1])
            if handler is not None:
                groups.setdefault(id(handler), (handler, []))[1].append(i)
        requests = [r if len(r) == 6 else (*r, None) for r in requests]
        for handler, indices in groups.values():
            if hasattr(handler, "answer_buffered"):
                taken = [i for i in indices if handler.wants(*requests[i][:4])]
                if taken:
                    replies = handler.answer_buffered([(m, p, "", ct, auth, body)
                                                       for m, p, ct, _, body, auth in (requests[i] for i in taken)])
                    for i, reply in zip(taken, replies):
                        out[i] = reply
                continue
            requests5 = [r[:5] for r in requests]
            many = getattr(handler, "answer_many", None)
            if many is not None:
                for i, reply in zip(indices, many([requests5[i] for i in indices])):
                    out[i] = reply
                continue
            for i in indices:
                method, path, ctype, length, body = requests5[i]
                out[i] = handler.answer(method, path, ctype, length, lambda n, b=body: b[:n])
        return out

    def stage_many(self, requests: Sequence[tuple]) -> "Staged":
        """``answer_many`` in stages for requests of ``blocking`` handlers: ``read()`` and ``write()`` may
        block (run them off the thread that reads requests), ``answers()`` between them does no I/O."""
        groups: dict[int, tuple[FastHandler, list[int]]] = {}
        for i, request in enumerate(requests):
            handler = self._handler(request[1])
            if handler is not None:
                groups.setdefault(id(handler), (handler, []))[1].append(i)
        parts = []
        for handler, indices in groups.values():
            chosen = [requests[i] for i in indices]
            stage = getattr(handler, "stage_many", None)
            parts.append((indices, stage([r[:5] for r in chosen]) if stage is not None
                          else _WholeBatch(self, chosen)))
        return Staged(len(requests), parts)

    def _buffered(self, handler, environ) -> tuple[str, bytes] | None:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        ctype, length = environ.get("CONTENT_TYPE", ""), environ.get("CONTENT_LENGTH") or ""
        if "HTTP_TRANSFER_ENCODING" in environ or not handler.wants(method, path, ctype, length):
            return None
        body = environ["wsgi.input"].read(int(length)) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)          # for Flask, should the handler decline
        return handler.answer_buffered([(method, path, environ.get("QUERY_STRING", ""), ctype,
                                         environ.get("HTTP_AUTHORIZATION"), body)])[0]

    def __call__(self, environ, start_response):
        if "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ:
            return self.wsgi_app(environ, start_response)          # a conditional request: the app judges it
        handler = self._handler(environ.get("PATH_INFO", ""))
        if handler is not None and hasattr(handler, "answer_buffered"):
            reply = self._buffered(handler, environ)
        else:
            reply = self.answer(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""),
                                environ.get("CONTENT_TYPE", ""), environ.get("CONTENT_LENGTH") or "",
                                environ["wsgi.input"].read)
        if reply is None:
            return self.wsgi_app(environ, start_response)
        content_type, body = reply[0], reply[1]
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                  *(reply[2] if len(reply) > 2 else ())])
        return [body]


class _WholeBatch:
    """A handler without stages: all of ``answer_many`` is its blocking ``read``."""

    def __init__(self, paths: FastPaths, requests):
        self.paths, self.requests, self.replies = paths, requests, None

    def read(self) -> None:
        self.replies = self.paths.answer_many(self.requests)

    def answers(self) -> list:
        return self.replies

    def writes(self) -> bool:
        return False

    def write(self) -> None:
        pass


class Staged:
    """``FastPaths.stage_many``'s result: each handler's stages, answers in the order of the requests."""

    def __init__(self, size: int, parts: list):
        self.size, self.parts = size, parts

    def read(self) -> None:
        for _, part in self.parts:
            part.read()

    def read_nowait(self):
        """``read`` without waiting, where the one handler's stage offers it (its ``read_nowait``: True —
        read; False — call ``read`` off this thread; or a pending read to wait for: its ``fileno()``
        readable and ``ready()`` True, then ``read_nowait`` again)."""
        if len(self.parts) != 1:
            return False
        nowait = getattr(self.parts[0][1], "read_nowait", None)
        return nowait() if nowait is not None else False

    def answers(self) -> list:
        out: list = [None] * self.size
        for indices, part in self.parts:
            for i, reply in zip(indices, part.answers()):
                out[i] = reply
        return out

    def writes(self) -> bool:
        """Whether ``write`` has anything to do (after ``answers``)."""
        return any(part.writes() for _, part in self.parts)

    def write(self) -> None:
        for _, part in self.parts:
            part.write()


def install(app, segment: str, handler: FastHandler) -> FastPaths:
    """Answer requests under ``/<segment>`` that ``handler`` takes before Flask (one middleware per app,
    outermost, so the serving worker finds it)."""
    fast = app.wsgi_app if isinstance(app.wsgi_app, FastPaths) else FastPaths(app.wsgi_app)
    fast.handlers[segment] = handler
    app.wsgi_app = fast
    return fast
