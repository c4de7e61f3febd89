"""prefect.yaml's deployments, read once, and `tomeflow serve`: one process, one schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flows.settings import PROJECT_ROOT

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


class DeploymentNotFound(LookupError):
    """prefect.yaml has no deployment of that name."""


def deployment_spec(name: str, path: Path = PREFECT_YAML) -> dict[str, Any]:
    """The deployment called name in prefect.yaml."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for spec in document.get("deployments") or []:
        if spec.get("name") == name:
            return dict(spec)
    known = ", ".join(d.get("name", "?") for d in document.get("deployments") or []) or "none"
    raise DeploymentNotFound(f"no deployment {name!r} in {path} (it has: {known})")


def serve(name: str, path: Path = PREFECT_YAML) -> None:
    """Serve the ingest flow as prefect.yaml's deployment `name`, with its schedules."""
    from prefect.schedules import Cron

    from flows.ingest import ingest

    spec = deployment_spec(name, path)
    schedules = [
        Cron(s["cron"], timezone=s.get("timezone", "UTC"), active=s.get("active", True))
        for s in spec.get("schedules") or []
    ]
    ingest.serve(
        name=name,
        schedules=schedules,
        parameters=spec.get("parameters") or {},
        description=spec.get("description"),
        tags=spec.get("tags"),
    )
