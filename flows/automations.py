"""`tomeflow automations create`: the automations declared in automations/*.yaml, on a server.

A file holds a Webhook block's settings (not its URL: that is given when creating) and
Prefect automations whose `call-webhook` actions call that block. Creating is idempotent:
the block and each automation are found by name and updated, never made twice.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from flows.settings import PROJECT_ROOT

AUTOMATIONS_DIR = PROJECT_ROOT / "automations"
INGEST_PROBLEMS = AUTOMATIONS_DIR / "ingest-problems.yaml"


class AutomationError(ValueError):
    """A file, URL or setting that cannot make an automation: nothing was created."""


def read_spec(path: Path = INGEST_PROBLEMS) -> dict[str, Any]:
    """The file's `webhook:` settings and `automations:` list, checked for their shape."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    webhook, automations = document.get("webhook"), document.get("automations")
    if not isinstance(webhook, dict) or not webhook.get("block"):
        raise AutomationError(f"{path}: no `webhook:` with a `block:` name")
    if not isinstance(automations, list) or not automations:
        raise AutomationError(f"{path}: no `automations:` list")
    for spec in automations:
        if not isinstance(spec, dict) or not spec.get("name"):
            raise AutomationError(f"{path}: an automation without a name")
    return {"webhook": webhook, "automations": automations}


def with_block(spec: dict[str, Any], block_id: str) -> dict[str, Any]:
    """The automation spec with block_id in each `call-webhook` action that names none."""
    filled = copy.deepcopy(spec)
    for key in ("actions", "actions_on_trigger", "actions_on_resolve"):
        for action in filled.get(key) or []:
            if action.get("type") == "call-webhook" and not action.get("block_document_id"):
                action["block_document_id"] = block_id
    return filled


def create_automations(webhook_url: str, path: Path = INGEST_PROBLEMS) -> list[str]:
    """Make or update the file's Webhook block (calling webhook_url) and its automations.

    On the server PREFECT_API_URL names (unset: an error, not a throwaway server). Returns
    one line per object, saying what was done; the lines show the webhook's scheme and host
    only (its path is often a token). An existing automation is updated to the file's
    trigger and actions, and keeps the server's enabled flag: an operator's
    `prefect automation pause` outlives a rerun.
    """
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore
    from prefect.settings import PREFECT_API_URL
    from prefect.types import SecretDict
    from pydantic import SecretStr

    parts = urlsplit(webhook_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AutomationError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}/…")
    spec = read_spec(path)
    if not PREFECT_API_URL.value():
        # without it, Prefect would start a throwaway server and make them there, uselessly
        raise AutomationError("PREFECT_API_URL is not set: which Prefect server?")
    hook = spec["webhook"]
    block = Webhook(
        url=SecretStr(webhook_url),
        method=hook.get("method", "POST"),
        headers=SecretDict(hook.get("headers") or {}),
    )
    block_id = block.save(hook["block"], overwrite=True)
    shown = f"{parts.scheme}://{parts.hostname}/…"  # no user, password, path or query
    done = [f"webhook block {hook['block']!r} ({block_id}): {shown}"]
    with get_client(sync_client=True) as client:
        for data in spec["automations"]:
            automation = AutomationCore.model_validate(with_block(data, str(block_id)))
            existing = client.read_automations_by_name(automation.name)
            if not existing:
                created = client.create_automation(automation)
                done.append(f"automation {automation.name!r} ({created}): created")
                continue
            keep, *copies = existing  # copies: made by hand, say by `prefect automation create`
            automation.enabled = keep.enabled
            client.update_automation(keep.id, automation)
            for duplicate in copies:
                client.delete_automation(duplicate.id)
            state = "enabled" if keep.enabled else "paused, left paused"
            removed = f", {len(copies)} duplicate(s) deleted" if copies else ""
            done.append(f"automation {automation.name!r} ({keep.id}): updated ({state}{removed})")
    return done
