"""Oversized bodies against ``driftwatch api`` (a real process): refused while its memory stays flat.

300 MB bodies, streamed chunked (no Content-Length) or declared, without a token and with one;
the server's peak resident memory (``VmHWM`` of /proc) may grow by at most ``BOUND`` over its
peak after start-up, and must refuse long before it has received the body.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import poll_until

TOKEN = "memory-token-for-tests-only"
BODY = 300 * 1024 * 1024
UPLOAD_LIMIT = 16 * 1024 * 1024
#: Peak RSS growth allowed: two copies of the largest accepted body plus 40 MiB of slack.
BOUND = 2 * UPLOAD_LIMIT + 40 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[int, int]]:
    port = _free_port()
    env = {
        **os.environ,
        "DRIFTWATCH_DATABASE__URL": sqlite_url,
        "DRIFTWATCH_API__TOKEN": TOKEN,
        "DRIFTWATCH_API__PORT": str(port),
        "DRIFTWATCH_API__MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "DRIFTWATCH_LOG_LEVEL": "WARNING",
    }
    cli = "from monitor.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", cli, "api"], env=env, cwd=tmp_path)
    try:

        def up() -> bool:
            assert proc.poll() is None, "driftwatch api exited"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        poll_until(up, 30, "driftwatch api to start", every=0.1)
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(10)


def _stream(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """Send a 300 MB chunked body until the server answers; (status, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    chunk = b"%x\r\n" % (1 << 20) + b"7" * (1 << 20) + b"\r\n"
    sent = 0
    try:
        while sent < BODY and not select.select([sock], [], [], 0)[0]:
            sock.sendall(chunk)
            sent += 1 << 20
        if sent >= BODY:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(30)
    reply = sock.recv(4096)
    sock.close()
    return int(reply.split(b" ", 2)[1]), sent


def test_oversized_bodies_are_refused_with_flat_memory(api: tuple[int, int]) -> None:
    pid, port = api
    before = _peak_rss(pid)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    json_type = {"Content-Type": "application/json"}
    results = [
        _stream(port, "POST", "/api/v1/profiles/fit", json_type),
        _stream(port, "POST", "/api/v1/alerts/1/ack", json_type),
        _stream(port, "PUT", "/api/v1/profiles/upload?model=m&version=v&name=n&format=npz", {}),
        _stream(port, "POST", "/api/v1/profiles/fit", {**json_type, **auth}),
        _stream(port, "PUT", "/api/v1/profiles/upload?model=m&version=v&name=n&format=npz", auth),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST /api/v1/profiles/fit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {BODY}\r\n\r\n".encode()
        )
        declared = int(sock.recv(4096).split(b" ", 2)[1])
    growth = _peak_rss(pid) - before
    print(f"peak RSS before {before / 2**20:.1f} MiB, growth {growth / 2**20:.1f} MiB; {results}")
    assert [status for status, _ in results] == [401, 401, 401, 413, 413]
    assert declared == 413
    assert all(sent < BODY // 4 for _, sent in results), results
    assert growth < BOUND, f"peak RSS grew by {growth / 2**20:.1f} MiB"
