"""The API's front door: the token before the body, body limits, content types, bounded values,
one error body, read and write tokens, compressed uploads, registry names."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from monitor.api.app import create_app
from monitor.settings import ApiSettings, Settings
from retrain.registry import ArtifactStore, RegistryError

TOKEN = "write-token-for-tests-only"
READ = "read-token-for-tests-only"
WRITE_AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_AUTH = {"Authorization": f"Bearer {READ}"}
UPLOAD = "/api/v1/profiles/upload"
UPLOAD_PARAMS = {"model": "digits", "version": "v1", "name": "up", "format": "npz"}


@pytest.fixture
def make_client(
    sqlite_url: str, settings_for: Callable[..., Settings]
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(**api: object) -> TestClient:
        settings = settings_for(sqlite_url, api=ApiSettings(**api))  # type: ignore[arg-type]
        client = TestClient(create_app(settings, check_broker=False))
        clients.append(client.__enter__())
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(
        token=TOKEN,
        read_token=READ,
        max_body_bytes=4096,
        max_upload_bytes=64 * 1024,
        max_expanded_bytes=1024 * 1024,
    )


def test_the_token_is_checked_before_the_body_is_parsed(client: TestClient) -> None:
    garbage = client.post(
        "/api/v1/profiles/fit", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 401 and garbage.headers["WWW-Authenticate"] == "Bearer"
    huge = client.post(
        "/api/v1/profiles/fit",
        content=b"x" * 100_000,
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 401  # not 413, not 422: nothing is read without a token


def test_body_limits_declared_and_chunked(client: TestClient) -> None:
    declared = client.post("/api/v1/alerts/1/ack", json={"by": "x" * 5000}, headers=WRITE_AUTH)
    assert declared.status_code == 413 and "4096-byte limit" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b'{"by": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    chunked = client.post(
        "/api/v1/alerts/1/ack",
        content=chunks(),
        headers={**WRITE_AUTH, "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413, chunked.text
    upload = client.put(UPLOAD, params=UPLOAD_PARAMS, content=b"x" * 70_000, headers=WRITE_AUTH)
    assert upload.status_code == 413 and "65536-byte limit" in upload.json()["detail"]


def test_wrong_content_type_or_encoding_is_415(client: TestClient) -> None:
    text = client.post(
        "/api/v1/alerts/1/ack",
        content=b'{"by": "me"}',
        headers={**WRITE_AUTH, "Content-Type": "text/plain"},
    )
    assert text.status_code == 415 and "application/json" in text.json()["detail"]
    gzipped = client.put(
        UPLOAD,
        params=UPLOAD_PARAMS,
        content=b"\x1f\x8b" + b"0" * 100,
        headers={**WRITE_AUTH, "Content-Encoding": "gzip"},
    )
    assert gzipped.status_code == 415 and "uncompressed" in gzipped.json()["detail"]


def test_read_and_write_tokens(make_client: Callable[..., TestClient]) -> None:
    client = make_client(token=TOKEN, read_token=READ, protect_reads=True)
    assert client.get("/api/v1/models").status_code == 401
    assert client.get("/api/v1/models", headers=READ_AUTH).status_code == 200
    assert client.get("/api/v1/models", headers=WRITE_AUTH).status_code == 200
    as_reader = client.post("/api/v1/alerts/1/ack", json={"by": "me"}, headers=READ_AUTH)
    assert as_reader.status_code == 403 and "read token cannot write" in as_reader.json()["detail"]
    as_writer = client.post("/api/v1/alerts/1/ack", json={"by": "me"}, headers=WRITE_AUTH)
    assert as_writer.status_code == 404  # through the door; no alert 1 in an empty store
    assert client.get("/healthz").status_code == 200
    only_reads = make_client(read_token=READ, protect_reads=True)
    assert only_reads.get("/api/v1/models", headers=READ_AUTH).status_code == 200
    refused = only_reads.post("/api/v1/alerts/1/ack", json={}, headers=READ_AUTH)
    assert refused.status_code == 403 and "no api.token" in refused.json()["detail"]


def test_secrets_are_never_printed(client: TestClient) -> None:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    shown = f"{settings} {settings.api!r} {settings.model_dump()}"
    assert TOKEN not in shown and READ not in shown


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/alerts/99999999999999999999999999/ack",
        "/api/v1/alerts/0/ack",
        "/api/v1/profiles/9223372036854775808/activate",
        "/api/v1/retrain/rollouts/-1/rollback",
    ],
)
def test_ids_out_of_range_are_422(client: TestClient, path: str) -> None:
    r = client.post(path, json={"by": "me", "reason": "x"}, headers=WRITE_AUTH)
    assert r.status_code == 422, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and body["errors"][0]["loc"][0] == "path"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/models/digits/drift", {"start": "0001-01-01T00:00:00+01:00"}),
        ("/api/v1/models/digits/drift", {"end": "0001-01-01T00:00:00Z"}),
        ("/api/v1/models/digits/drift", {"start": "2026-01-01T00:00:00"}),
        ("/api/v1/models/digits/drift", {"cursor": str(2**64)}),
        ("/api/v1/models/digits/drift", {"limit": str(10**30)}),
        ("/api/v1/alerts", {"model": "a\x00b"}),
        ("/api/v1/profiles", {"version": "\x00"}),
        ("/api/v1/retrain/jobs", {"model": "x" * 500}),
        ("/api/v1/retrain/jobs/18446744073709551616", {}),
        ("/api/v1/windows/99999999999999999999/outliers", {}),
    ],
)
def test_bounded_query_and_path_values(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], str) and r.json()["errors"]


def test_text_fields_refuse_control_characters(client: TestClient) -> None:
    r = client.post("/api/v1/alerts/1/ack", json={"by": "ev\x00il"}, headers=WRITE_AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "by"]


def test_every_4xx_in_the_openapi_document_is_the_error_body(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    refs = set()
    for path in doc["paths"].values():
        for operation in path.values():
            for status in ("401", "404", "413", "415", "422"):
                content = operation["responses"][status]["content"]
                refs.add(content["application/json"]["schema"]["$ref"])
    assert refs == {"#/components/schemas/ErrorBody"}


def _npz_declaring(shape: tuple[int, ...]) -> bytes:
    """An .npz whose one array's header declares ``shape`` of float64, with 8 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("probs.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\0" * 8)
    return out.getvalue()


def test_uploads_that_expand_are_refused(client: TestClient) -> None:
    bomb = io.BytesIO()
    np.savez_compressed(bomb, probs=np.zeros((64, 1024, 1024), dtype=np.uint8))  # 64 MiB
    assert len(bomb.getvalue()) < 64 * 1024  # under the upload limit as sent
    expands = client.put(UPLOAD, params=UPLOAD_PARAMS, content=bomb.getvalue(), headers=WRITE_AUTH)
    assert expands.status_code == 413 and "expands to" in expands.json()["detail"]
    claims = client.put(
        UPLOAD, params=UPLOAD_PARAMS, content=_npz_declaring((10**10,)), headers=WRITE_AUTH
    )
    assert claims.status_code == 413 and "80000000" in claims.json()["detail"]
    junk = client.put(UPLOAD, params=UPLOAD_PARAMS, content=b"PK not a zip", headers=WRITE_AUTH)
    assert junk.status_code == 422


@pytest.mark.parametrize("model", ["a/../../..", "../x", "/etc", "a/./b", "a//b"])
def test_registry_names_cannot_leave_the_root(tmp_path: Path, model: str) -> None:
    store = ArtifactStore(tmp_path / "registry")
    with pytest.raises(RegistryError, match="may not leave the registry root"):
        store.version_dir(model, "v1")
    with pytest.raises(RegistryError):
        store.version_dir("digits", "../../v1")
    assert store.version_dir("team/digits", "v1") == tmp_path / "registry" / "team/digits/v1"
