"""Where registry artifacts live so that other pods can read them: a small protocol and two
backends, the local disk (``file://`` URLs, e.g. a PersistentVolume) and an S3-API object store
(``s3://bucket/key``; AWS, MinIO, Ceph, GCS interoperability).

A deployment spec names each artifact by URL and SHA-256; a model server calls :func:`fetch`,
which refuses bytes whose hash differs. Another registry backend only has to offer
:class:`ObjectStorage`.

>>> storage = LocalStorage("/tmp/dw-storage-doctest")
>>> url = storage.put("digits/v1/model.onnx", b"onnx")
>>> url
'file:///tmp/dw-storage-doctest/digits/v1/model.onnx'
>>> fetch(url, sha256_bytes(b"onnx"))
b'onnx'
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from monitor.errors import DriftwatchError


class StorageError(DriftwatchError):
    """An artifact URL cannot be read, or its bytes do not match the recorded SHA-256."""


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    >>> sha256_bytes(b"driftwatch")[:12]
    '7ebfb131af12'
    """
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a fsynced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ObjectStorage(Protocol):
    """Write-once artifact storage addressed by URL."""

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (``model/version/file``); return its URL."""
        ...

    def url(self, key: str) -> str:
        """The URL of ``key`` (what :meth:`put` returns)."""
        ...

    def get(self, url: str) -> bytes:
        """The bytes at ``url`` (one this storage returned)."""
        ...


class LocalStorage:
    """Files under ``root``, written atomically; URLs are ``file://`` absolute paths."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def put(self, key: str, data: bytes) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        return self.url(key)

    def url(self, key: str) -> str:
        return (self.root / key).as_uri()

    def get(self, url: str) -> bytes:
        return _read_file(url)


class S3Storage:
    """Objects in ``bucket`` under ``prefix`` through the S3 API (needs the ``s3`` extra).

    Credentials come from boto3's usual chain (environment, web identity / IRSA, instance role).
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumSHA256=_b64_sha256(data)
        )
        return self.url(key)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def get(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise StorageError(f"{url}: not an s3:// URL")
        try:
            body = self.client.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"]
            data: bytes = body.read()
        except Exception as exc:  # botocore raises many unrelated types
            raise StorageError(f"{url}: {exc}") from exc
        return data


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _read_file(url: str) -> bytes:
    path = Path(unquote(urlsplit(url).path))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"{url}: {exc.strerror or exc}") from exc


def storage_from_url(url: str, endpoint_url: str | None = None) -> ObjectStorage:
    """The backend for a base URL: ``s3://bucket/prefix`` or a directory (``file://`` or path)."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageError(f"{url}: no bucket")
        return S3Storage(parts.netloc, parts.path, endpoint_url=endpoint_url)
    if parts.scheme in ("", "file"):
        return LocalStorage(unquote(parts.path))
    raise StorageError(f"{url}: unsupported artifact storage (s3:// or file://)")


def fetch(url: str, sha256: str, endpoint_url: str | None = None, timeout: float = 60.0) -> bytes:
    """The bytes at ``url`` (``file://``, ``s3://``, ``http(s)://``), checked against ``sha256``.

    A bare path is read as a file (specs written before artifacts had URLs).
    """
    scheme = urlsplit(url).scheme
    if scheme in ("", "file"):
        data = _read_file(url)
    elif scheme == "s3":
        data = S3Storage("", endpoint_url=endpoint_url).get(url)
    elif scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                data = resp.read()
        except OSError as exc:
            raise StorageError(f"{url}: {exc}") from exc
    else:
        raise StorageError(f"{url}: unsupported scheme {scheme!r}")
    digest = sha256_bytes(data)
    if digest != sha256:
        raise StorageError(f"{url}: sha256 {digest[:12]} != expected {sha256[:12]}")
    return data
