"""Provision Grafana over its HTTP API with ``grafana-client``: folder, datasources, dashboards.

Idempotent: each object is read first and written only when it differs, so a second push
changes nothing (every item reports ``unchanged``). Dashboards are saved with the version
Grafana last returned and ``overwrite: false``, so an edit made in the UI between our read and
our write is a 412 conflict that we report instead of silently clobbering it; ``force`` sends
``overwrite: true``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboards.boards import build_dashboards
from dashboards.grafana import POSTGRES_TYPE, POSTGRES_UID, PROMETHEUS_TYPE, PROMETHEUS_UID, Json
from monitor.errors import DriftwatchError
from monitor.settings import Settings

#: Dashboard keys Grafana owns or rewrites on save; ignored when comparing.
_VOLATILE = ("id", "version", "iteration")


class GrafanaError(DriftwatchError):
    """Grafana refused or failed a provisioning call."""


@dataclass
class PushReport:
    """What one push did to each object: ``created``, ``updated`` or ``unchanged``."""

    actions: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(a != "unchanged" for a in self.actions.values())


def datasource_models(settings: Settings) -> list[Json]:
    """The two datasources the dashboards use, with fixed uids."""
    g = settings.grafana
    password = g.postgres_password.get_secret_value() if g.postgres_password else ""
    return [
        {
            "uid": PROMETHEUS_UID,
            "name": "Driftwatch Prometheus",
            "type": PROMETHEUS_TYPE,
            "access": "proxy",
            "url": g.prometheus_url,
            "isDefault": False,
            "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
        },
        {
            "uid": POSTGRES_UID,
            "name": "Driftwatch PostgreSQL",
            "type": POSTGRES_TYPE,
            "access": "proxy",
            "url": g.postgres_host,
            "user": g.postgres_user,
            "isDefault": False,
            "jsonData": {
                "database": g.postgres_database,
                "sslmode": "prefer",
                "postgresVersion": 1500,
                "timescaledb": False,
            },
            "secureJsonData": {"password": password},
        },
    ]


def _status(exc: Exception) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


def _same(current: Json, wanted: Json, keys: list[str]) -> bool:
    return all(current.get(k) == wanted.get(k) for k in keys)


def client(settings: Settings) -> Any:
    """A ``GrafanaApi`` for ``settings.grafana`` (bearer token auth when a token is set)."""
    from grafana_client.api import GrafanaApi

    token = settings.grafana.token.get_secret_value() if settings.grafana.token else None
    return GrafanaApi.from_url(settings.grafana.url, credential=token, timeout=10.0)


def push(settings: Settings, api: Any = None, force: bool = False) -> PushReport:
    """Create or update the folder, datasources and dashboards; see the module docstring."""
    from grafana_client.client import GrafanaException

    api = api or client(settings)
    report = PushReport()
    try:
        report.actions["folder"] = _folder(api, settings)
        for ds in datasource_models(settings):
            report.actions[f"datasource:{ds['uid']}"] = _datasource(api, ds)
        for board in build_dashboards(settings):
            report.actions[f"dashboard:{board['uid']}"] = _dashboard(
                api, board, settings.grafana.folder_uid, force
            )
    except GrafanaException as exc:
        if _status(exc) == 412:
            raise GrafanaError(
                f"dashboard changed in Grafana since it was read (412); rerun with --force "
                f"to overwrite: {exc}"
            ) from exc
        raise GrafanaError(f"Grafana call failed ({_status(exc) or 'no response'}): {exc}") from exc
    return report


def _folder(api: Any, settings: Settings) -> str:
    from grafana_client.client import GrafanaException

    uid, title = settings.grafana.folder_uid, settings.grafana.folder_title
    try:
        current = api.folder.get_folder(uid)
    except GrafanaException as exc:
        if _status(exc) != 404:
            raise
        api.folder.create_folder(title, uid=uid)
        return "created"
    if current.get("title") == title:
        return "unchanged"
    api.folder.update_folder(uid, title=title, version=current.get("version"), overwrite=True)
    return "updated"


def _datasource(api: Any, wanted: Json) -> str:
    from grafana_client.client import GrafanaException

    try:
        current = api.datasource.get_datasource_by_uid(wanted["uid"])
    except GrafanaException as exc:
        if _status(exc) != 404:
            raise
        api.datasource.create_datasource(wanted)
        return "created"
    keys = ["name", "type", "url", "access", "user", "jsonData"]
    if _same(current, wanted, keys) and (
        "secureJsonData" not in wanted
        or bool(current.get("secureJsonFields", {}).get("password"))
        == bool(wanted["secureJsonData"].get("password"))
    ):
        return "unchanged"
    api.datasource.update_datasource_by_uid(wanted["uid"], wanted)
    return "updated"


def _dashboard(api: Any, board: Json, folder_uid: str, force: bool) -> str:
    from grafana_client.client import GrafanaException

    try:
        current = api.dashboard.get_dashboard(board["uid"])
    except GrafanaException as exc:
        if _status(exc) != 404:
            raise
        current = None
    body: Json = {
        "dashboard": dict(board),
        "folderUid": folder_uid,
        "overwrite": force,
        "message": "driftwatch dashboards push",
    }
    if current is None:
        body["dashboard"]["id"] = None
        api.dashboard.update_dashboard(body)
        return "created"
    existing = current["dashboard"]
    stripped = {k: v for k, v in existing.items() if k not in _VOLATILE}
    if stripped == board and current.get("meta", {}).get("folderUid") == folder_uid:
        return "unchanged"
    body["dashboard"]["id"] = existing.get("id")
    body["dashboard"]["version"] = existing.get("version")
    api.dashboard.update_dashboard(body)
    return "updated"
