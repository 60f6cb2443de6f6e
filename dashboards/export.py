"""Grafana file provisioning: datasource and dashboard-provider YAML plus dashboard JSON files.

Layout written under ``out`` (mount ``provisioning/`` at ``/etc/grafana/provisioning`` and
``dashboards/`` at the provider's ``path``; the Helm chart turns each file into a ConfigMap)::

    provisioning/datasources/driftwatch.yaml
    provisioning/dashboards/driftwatch.yaml
    dashboards/driftwatch-oncall.json ...
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dashboards.boards import build_dashboards
from dashboards.push import datasource_models
from monitor.settings import Settings

DASHBOARDS_PATH = "/var/lib/grafana/dashboards/driftwatch"


def export(settings: Settings, out: Path, dashboards_path: str = DASHBOARDS_PATH) -> list[Path]:
    """Write the provisioning files under ``out`` and return their paths."""
    written: list[Path] = []

    def write(rel: str, text: str) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    sources = []
    for ds in datasource_models(settings):
        item = {k: v for k, v in ds.items() if k != "secureJsonData"}
        item["orgId"] = 1
        item["editable"] = False
        if "secureJsonData" in ds:
            # Grafana expands $VAR from its environment; the secret never lands in a ConfigMap.
            item["secureJsonData"] = {"password": "$DRIFTWATCH_POSTGRES_PASSWORD"}
        sources.append(item)
    write(
        "provisioning/datasources/driftwatch.yaml",
        yaml.safe_dump({"apiVersion": 1, "datasources": sources}, sort_keys=False),
    )
    provider = {
        "name": "driftwatch",
        "orgId": 1,
        "folder": settings.grafana.folder_title,
        "folderUid": settings.grafana.folder_uid,
        "type": "file",
        "disableDeletion": False,
        "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
    }
    write(
        "provisioning/dashboards/driftwatch.yaml",
        yaml.safe_dump({"apiVersion": 1, "providers": [provider]}, sort_keys=False),
    )
    for board in build_dashboards(settings):
        write(f"dashboards/{board['uid']}.json", json.dumps(board, indent=2, sort_keys=True) + "\n")
    return written
