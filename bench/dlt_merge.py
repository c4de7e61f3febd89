"""Merge dumped rows into PostgreSQL with dlt; print the rows and seconds as JSON.

Runs in bench/.venv-dlt (dlt is not a dependency of tomeflow), from bench/loadspeed.py:

    bench/.venv-dlt/bin/python bench/dlt_merge.py SPEC.json

SPEC: {"url": ..., "pipelines_dir": ..., "file_format": null | "insert_values" | "csv",
"tables": [{"name": "core.papers", "file": "....jsonl", "primary_key": [...],
"columns": {column: information_schema data_type}}]}. Each table becomes one resource with
write_disposition="merge" and its primary key; columns get their types as hints, so nothing is
inferred from the JSON (arrays and jsonb stay json columns, no child tables).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dlt

DLT_TYPES = {
    "text": "text",
    "uuid": "text",
    "integer": "bigint",
    "bigint": "bigint",
    "boolean": "bool",
    "double precision": "double",
    "date": "date",
    "timestamp with time zone": "timestamp",
    "jsonb": "json",
    "ARRAY": "json",
}
PAGE = 1000


def pages(path: Path, counter: dict[str, int], name: str) -> Iterator[list[dict[str, Any]]]:
    """The file's rows, a page of PAGE rows at a time (dlt extracts lists faster)."""
    page: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as rows:
        for line in rows:
            page.append(json.loads(line))
            if len(page) == PAGE:
                counter[name] += len(page)
                yield page
                page = []
    counter[name] += len(page)
    if page:
        yield page


def with_password(url: str) -> str:
    """dlt insists on a password; a server with trust authentication ignores this one."""
    parts = urlsplit(url)
    if parts.password or "@" not in parts.netloc:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user}:unused@{host}"))


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    counter = {t["name"]: 0 for t in spec["tables"]}
    resources = [
        dlt.resource(
            pages(Path(t["file"]), counter, t["name"]),
            name=t["name"].replace(".", "_"),
            write_disposition="merge",
            primary_key=t["primary_key"],
            columns={c: {"data_type": DLT_TYPES.get(d, "text")} for c, d in t["columns"].items()},
        )
        for t in spec["tables"]
    ]
    pipeline = dlt.pipeline(
        pipeline_name="tomeflow_bench",
        destination=dlt.destinations.postgres(credentials=with_password(spec["url"])),
        dataset_name="tomeflow",
        pipelines_dir=spec["pipelines_dir"],
    )
    options = {"loader_file_format": spec["file_format"]} if spec.get("file_format") else {}
    start = time.perf_counter()
    pipeline.run(resources, **options)
    seconds = time.perf_counter() - start
    steps: dict[str, float] = {}
    formats: set[str] = set()  # of the data files loaded ("sql": the merge statements)
    trace = pipeline.last_trace
    if trace is not None:
        for step in trace.steps:
            if step.finished_at is not None:
                steps[step.step] = (step.finished_at - step.started_at).total_seconds()
        if trace.last_load_info is not None:
            for package in trace.last_load_info.load_packages:
                for job in package.jobs.get("completed_jobs", []):
                    formats.add(job.job_file_info.file_format)
    formats.discard("sql")
    print(
        json.dumps(
            {
                "rows": sum(counter.values()),
                "seconds": seconds,
                "steps": steps,
                "dlt_version": dlt.__version__,
                "file_format": ", ".join(sorted(formats)) or spec.get("file_format") or "",
            }
        )
    )


if __name__ == "__main__":
    main()
