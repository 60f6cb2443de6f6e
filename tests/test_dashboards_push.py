"""`dashboards push` against a local HTTP server that enforces Grafana's HTTP API contract.

Grafana cannot run here, so the server below implements the documented behaviour of the
endpoints we call (https://grafana.com/docs/grafana/latest/developers/http_api/): bearer auth
(401), folders (404, 409 on a duplicate uid, 412 on a stale version), datasources by uid (409 on a
duplicate name; secrets never echoed, only ``secureJsonFields``) and ``POST /api/dashboards/db``
(``dashboard`` object with a title, ``folderUid`` that must exist, ``overwrite``, and 412
``version-mismatch`` when the version sent is not the stored one without ``overwrite``).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from dashboards.push import GrafanaError, push
from monitor.cli import cli
from monitor.settings import GrafanaSettings, Settings

TOKEN = "glsa_test_token_123"


class FakeGrafana:
    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.bump_before_save = False  # simulate a UI edit racing with our push
        self._ids = iter(range(1, 10_000))

    # each handler returns (status, body)
    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api", "folders"]:
            return self._folders(method, parts[2:], body)
        if parts[:2] == ["api", "datasources"]:
            return self._datasources(method, parts[2:], body)
        if parts[:3] == ["api", "dashboards", "uid"] and method == "GET":
            stored = self.dashboards.get(parts[3])
            if stored is None:
                return 404, {"message": "Dashboard not found"}
            return 200, copy.deepcopy(stored)
        if parts == ["api", "dashboards", "db"] and method == "POST":
            return self._save_dashboard(body)
        return 404, {"message": "Not found"}

    def _folders(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "POST" and not rest:
            if not isinstance(body.get("title"), str) or not body["title"]:
                return 400, {"message": "folder title cannot be empty"}
            uid = body.get("uid") or f"f{next(self._ids)}"
            if uid in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[uid] = {
                "id": next(self._ids),
                "uid": uid,
                "title": body["title"],
                "version": 1,
            }
            return 200, self.folders[uid]
        folder = self.folders.get(rest[0]) if rest else None
        if folder is None:
            return 404, {"message": "folder not found", "status": "not-found"}
        if method == "GET":
            return 200, folder
        if method == "PUT":
            if not body.get("overwrite") and body.get("version") != folder["version"]:
                return 412, {"message": "the folder has been changed by someone else"}
            folder.update(title=body.get("title", folder["title"]), version=folder["version"] + 1)
            return 200, folder
        return 405, {"message": "method not allowed"}

    def _datasources(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "POST" and not rest:
            missing = [k for k in ("name", "type", "access") if not body.get(k)]
            if missing:
                return 400, {"message": f"missing {missing}"}
            if any(d["name"] == body["name"] for d in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            ds = self._store_ds(body, next(self._ids))
            return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource added"}
        if rest[:1] == ["uid"] and len(rest) == 2:
            current = self.datasources.get(rest[1])
            if current is None:
                return 404, {"message": "Data source not found"}
            if method == "GET":
                return 200, current
            if method == "PUT":
                ds = self._store_ds(body, current["id"], current["version"] + 1)
                return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource updated"}
        return 405, {"message": "method not allowed"}

    def _store_ds(self, body: dict[str, Any], ds_id: int, version: int = 1) -> dict[str, Any]:
        ds = {k: v for k, v in body.items() if k != "secureJsonData"}
        ds.update(id=ds_id, version=version, uid=body.get("uid") or f"ds{ds_id}")
        ds["secureJsonFields"] = {k: True for k, v in body.get("secureJsonData", {}).items() if v}
        self.datasources[ds["uid"]] = ds
        return ds

    def _save_dashboard(self, body: Any) -> tuple[int, Any]:
        board = body.get("dashboard")
        if not isinstance(board, dict) or not board.get("title"):
            return 400, {"message": "Dashboard title cannot be empty"}
        folder_uid = body.get("folderUid")
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found"}
        uid = board.get("uid")
        stored = self.dashboards.get(uid) if uid else None
        if self.bump_before_save and stored is not None:
            stored["dashboard"]["version"] += 1
            self.bump_before_save = False
        if stored is not None and not body.get("overwrite"):
            if board.get("id") is None:
                return 412, {
                    "status": "name-exists",
                    "message": "A dashboard with the same uid already exists",
                }
            if board.get("version") != stored["dashboard"]["version"]:
                return 412, {
                    "status": "version-mismatch",
                    "message": "The dashboard has been changed by someone else",
                }
        version = stored["dashboard"]["version"] + 1 if stored else 1
        dash_id = stored["dashboard"]["id"] if stored else next(self._ids)
        saved = dict(board, id=dash_id, version=version)
        self.dashboards[uid] = {
            "dashboard": saved,
            "meta": {"folderUid": folder_uid or "", "version": version},
        }
        return 200, {
            "id": dash_id,
            "uid": uid,
            "url": f"/d/{uid}",
            "status": "success",
            "version": version,
            "slug": uid,
        }


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            fake.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"message": "Unauthorized"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            if body is not None and "application/json" not in self.headers.get("Content-Type", ""):
                self._reply(415, {"message": "Content-Type must be application/json"})
                return
            self._reply(*fake.handle(self.command, self.path, body))

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _settings(url: str, token: str = TOKEN) -> Settings:
    return Settings(
        grafana=GrafanaSettings(url=url, token=SecretStr(token), postgres_password=SecretStr("pw"))
    )


def test_push_creates_everything_then_is_idempotent(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    first = push(_settings(url))
    assert set(first.actions.values()) == {"created"} and len(first.actions) == 6
    assert fake.folders["driftwatch"]["title"] == "Driftwatch"
    assert fake.datasources["driftwatch-postgres"]["secureJsonFields"] == {"password": True}
    assert "secureJsonData" not in fake.datasources["driftwatch-postgres"]
    for uid in ("driftwatch-oncall", "driftwatch-canary", "driftwatch-stakeholders"):
        assert fake.dashboards[uid]["meta"]["folderUid"] == "driftwatch"
        assert fake.dashboards[uid]["dashboard"]["version"] == 1
    writes = [r for r in fake.requests if r[0] != "GET"]

    second = push(_settings(url))
    assert set(second.actions.values()) == {"unchanged"} and not second.changed
    assert [r for r in fake.requests if r[0] != "GET"] == writes  # no write the second time
    assert all(d["dashboard"]["version"] == 1 for d in fake.dashboards.values())


def test_push_updates_what_changed_with_the_stored_version(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    push(_settings(url))
    fake.dashboards["driftwatch-canary"]["dashboard"]["title"] = "edited in the UI"
    fake.dashboards["driftwatch-canary"]["dashboard"]["version"] = 4
    fake.datasources["driftwatch-prometheus"]["url"] = "http://elsewhere:9090"
    report = push(_settings(url))
    assert report.actions["dashboard:driftwatch-canary"] == "updated"
    assert report.actions["datasource:driftwatch-prometheus"] == "updated"
    assert report.actions["dashboard:driftwatch-oncall"] == "unchanged"
    canary = fake.dashboards["driftwatch-canary"]["dashboard"]
    assert canary["title"] == "Driftwatch / Canary" and canary["version"] == 5
    assert fake.datasources["driftwatch-prometheus"]["url"] == "http://prometheus:9090"


def test_version_conflict_is_reported_and_force_overwrites(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    push(_settings(url))
    fake.dashboards["driftwatch-oncall"]["dashboard"]["title"] = "edited"
    fake.bump_before_save = True  # someone saves between our read and our write
    with pytest.raises(GrafanaError, match="412"):
        push(_settings(url))
    fake.bump_before_save = True
    report = push(_settings(url), force=True)
    assert report.actions["dashboard:driftwatch-oncall"] == "updated"
    assert fake.dashboards["driftwatch-oncall"]["dashboard"]["title"] == "Driftwatch / On-call"


def test_bad_token_is_a_clear_error(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    with pytest.raises(GrafanaError, match=r"Unauthorized|401"):
        push(_settings(url, token="wrong"))
    assert not fake.folders and not fake.dashboards


def test_cli_push(grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = grafana
    monkeypatch.setenv("DRIFTWATCH_GRAFANA__URL", url)
    monkeypatch.setenv("DRIFTWATCH_GRAFANA__TOKEN", TOKEN)
    result = CliRunner().invoke(cli, ["dashboards", "push"])
    assert result.exit_code == 0, result.output
    assert "created   dashboard:driftwatch-oncall" in result.output
    again = CliRunner().invoke(cli, ["dashboards", "push"])
    assert again.output.count("unchanged") == 6
