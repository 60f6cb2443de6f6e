"""Registry artifacts in an object store, against a real local S3 server (moto in server mode):
what the evaluator writes survives the loss of its disk, and a model server in another pod
fetches it by URL, checked against the SHA-256 the deployment spec carries."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from monitor.settings import RetrainSettings
from monitor.store.retrain_tables import ModelVersion
from retrain.deploy import ArmSpec, DeploymentSpec
from retrain.registry import ArtifactStore
from retrain.storage import LocalStorage, S3Storage, StorageError, fetch, sha256_bytes

BUCKET = "driftwatch-models"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free port, for this module."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "moto_server exited"
                subprocess.run(["sleep", "0.1"], check=True)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def staged(store: ArtifactStore, files: dict[str, bytes]) -> ModelVersion:
    """Write one version's artifacts through the store; the row the registry would add."""
    with store.stage("digits", "v2") as staging:
        for name, data in files.items():
            staging.write(name, f"{name}.bin", data)
    return ModelVersion(model="digits", version="v2", artifacts=staging.artifacts)


def test_s3_round_trip_and_checksums(s3: Any, s3_endpoint: str) -> None:
    storage = S3Storage(BUCKET, "prod/registry", endpoint_url=s3_endpoint)
    url = storage.put("digits/v1/model.onnx", b"onnx-bytes")
    assert url == f"s3://{BUCKET}/prod/registry/digits/v1/model.onnx"
    head = s3.get_object(Bucket=BUCKET, Key="prod/registry/digits/v1/model.onnx")
    assert head["Body"].read() == b"onnx-bytes"
    assert storage.get(url) == b"onnx-bytes"
    assert fetch(url, sha256_bytes(b"onnx-bytes"), s3_endpoint) == b"onnx-bytes"
    with pytest.raises(StorageError, match=r"sha256 .* != expected"):
        fetch(url, sha256_bytes(b"other"), s3_endpoint)
    with pytest.raises(StorageError, match="NoSuchKey"):
        storage.get(f"s3://{BUCKET}/prod/registry/digits/v9/model.onnx")


def test_promoted_artifacts_survive_losing_the_registry_disk(
    s3: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    settings = RetrainSettings(
        registry_dir=tmp_path / "registry",
        artifact_url=f"s3://{BUCKET}/registry",
        s3_endpoint_url=s3_endpoint,
    )
    store = ArtifactStore.from_settings(settings)
    onnx, torch = b"\x08\x07onnx" * 100, b"weights"
    mv = staged(store, {"onnx_int8": onnx, "torch": torch})
    url = store.url(mv, "onnx_int8")
    assert url == f"s3://{BUCKET}/registry/digits/v2/onnx_int8.bin"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {
        f"registry/digits/v2/{n}" for n in ("onnx_int8.bin", "torch.bin", "manifest.json")
    }

    # the spec a model server reads names the URL and the hash, never a local path
    spec = DeploymentSpec(
        model="digits", stable=ArmSpec("v2", url, mv.artifacts["onnx_int8"]["sha256"])
    )
    shutil.rmtree(tmp_path / "registry")  # the evaluator pod restarted on a fresh disk
    arm = DeploymentSpec.from_dict(spec.to_dict()).stable
    assert fetch(arm.url, arm.sha256, s3_endpoint) == onnx

    # a server without S3 credentials gets a presigned HTTPS-style URL, same check
    presigned = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "registry/digits/v2/onnx_int8.bin"}
    )
    assert fetch(presigned, arm.sha256) == onnx
    s3.put_object(Bucket=BUCKET, Key="registry/digits/v2/onnx_int8.bin", Body=b"tampered")
    with pytest.raises(StorageError, match="sha256"):
        fetch(arm.url, arm.sha256, s3_endpoint)


def test_local_disk_backend_gives_file_urls(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "registry")
    mv = staged(store, {"onnx_fp32": b"fp32"})
    url = store.url(mv, "onnx_fp32")
    assert url == (tmp_path / "registry/digits/v2/onnx_fp32.bin").resolve().as_uri()
    assert fetch(url, sha256_bytes(b"fp32")) == b"fp32"
    shutil.rmtree(tmp_path / "registry")
    with pytest.raises(StorageError, match="No such file"):
        fetch(url, sha256_bytes(b"fp32"))
    local = LocalStorage(tmp_path / "objects")
    assert local.get(local.put("a/b.bin", b"x")) == b"x"


def test_specs_written_with_local_paths_still_load(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"old")
    old: dict[str, Any] = {
        "model": "digits",
        "stable": {"version": "v1", "path": str(model), "sha256": sha256_bytes(b"old")},
    }
    arm = DeploymentSpec.from_dict(old).stable
    assert arm.url == model.as_uri()
    assert fetch(arm.url, arm.sha256) == b"old"


def test_unknown_schemes_are_refused() -> None:
    with pytest.raises(StorageError, match="unsupported scheme 'ftp'"):
        fetch("ftp://host/m.onnx", "0" * 64)
