"""With an API key set, an unauthenticated request is refused from its headers alone (slow: a real
`rag serve` over a socket). The request below announces a 60 MB upload and sends 1 MB of it: the 401
arrives anyway, so the server never waited for, parsed or stored the body."""

from __future__ import annotations

import socket

import httpx
import pytest
from kit import ChildProcess, clean_env, free_port, rag_command

pytestmark = pytest.mark.slow

KEY = "s3cret-key"
ANNOUNCED = 60_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyed")
    port = free_port()
    child = ChildProcess(rag_command("serve", "--host", "127.0.0.1", "--port", str(port)),
                         clean_env(RAG_DATA_DIR=str(folder / "data"), RAG_API_KEY=KEY, RAG_EMBED_PROVIDER="hash"),
                         folder / "serve.log")
    child.wait_for_url(f"http://127.0.0.1:{port}/readyz", timeout=120)
    yield port, folder / "data"
    child.stop()


def _partial_upload(port: int, authorization: str | None) -> bytes:
    head = ("POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=XyZ\r\n"
            f"Content-Length: {ANNOUNCED}\r\n" + (f"Authorization: {authorization}\r\n" if authorization else "")
            + "\r\n")
    part = b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n' + b"a" * 1_000_000
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head.encode() + part)  # the rest of the 60 MB is never sent
        reply = b""
        try:
            while chunk := s.recv(65536):  # the server answers and closes
                reply += chunk
        except ConnectionResetError:  # closing with the unread body in its buffer resets the connection
            pass
        return reply


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {KEY}"])
def test_an_unauthenticated_upload_is_refused_before_its_body(server, authorization):
    port, data_dir = server
    reply = _partial_upload(port, authorization)
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert b"content-type: application/json" in reply.lower() and b"www-authenticate: bearer" in reply.lower()
    body = reply.partition(b"\r\n\r\n")[2]
    assert not body or b'"unauthorized"' in body  # the envelope, when it arrived before the reset
    listing = httpx.get(f"http://127.0.0.1:{port}/v1/documents", headers={"Authorization": f"Bearer {KEY}"})
    assert listing.status_code == 200 and "big.txt" not in listing.text
    uploads = data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []  # nothing spooled, nothing half-written


def test_the_right_key_still_uploads(server):
    port, _ = server
    r = httpx.post(f"http://127.0.0.1:{port}/v1/documents", headers={"Authorization": f"Bearer {KEY}"},
                   files={"files": ("note.txt", b"The harbour reopened on Monday after the storm.\n", "text/plain")})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "added"
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200  # operations routes stay open
