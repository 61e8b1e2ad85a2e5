"""The REST API as the demo calls it: over HTTP to the running service (``url``), else through the
same Flask app in process; a reply other than the one expected stops the demo (``DemoError``)."""
from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass

import click


class DemoError(click.ClickException):
    pass


@dataclass
class Reply:
    status: int
    content_type: str
    data: bytes

    def json(self) -> dict:
        return json.loads(self.data)


class Client:
    """The REST API, over HTTP (``url``) or in process (a Flask app's test client)."""

    def __init__(self, *, app=None, url: str | None = None):
        self.app_client = app.test_client() if app is not None else None
        self.url = url.rstrip("/") if url else None

    def call(self, method: str, path: str, token: str | None = None, *, json_body=None, data: bytes | None = None,
             content_type: str | None = None, expect: int = 200) -> Reply:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if self.app_client is not None:
            r = self.app_client.open(path, method=method, data=data, headers=headers)
            reply = Reply(r.status_code, r.headers.get("Content-Type", ""), r.data)
        else:
            req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    reply = Reply(resp.status, resp.headers.get("Content-Type", ""), resp.read())
            except urllib.error.HTTPError as exc:
                reply = Reply(exc.code, exc.headers.get("Content-Type", ""), exc.read())
        if reply.status != expect:
            raise DemoError(f"{method} {path}: HTTP {reply.status} (expected {expect}): {reply.data[:300]!r}")
        return reply


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """RFC 7578 form data (names and file names are ours, ASCII)."""
    boundary = "racentre-" + secrets.token_hex(12)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
