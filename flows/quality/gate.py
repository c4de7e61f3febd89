"""The quality gate: Great Expectations over each batch's frames and over the loaded tables.

One `QualityGate` holds one ephemeral GX context for its whole life, with its data sources,
suites and validation definitions made once and reused for every batch: GX's fixed cost per
validation, not the data, dominates the time a batch takes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.datasource.fluent.interfaces import GxDatasourceWarning
from great_expectations.util import convert_to_json_serializable

from flows.load.db import sqlalchemy_url as to_sqlalchemy_url
from flows.quality import docs
from flows.quality.frames import batch_frame, prepared
from flows.quality.results import QualityGateError, QualityReport, RowFailure, SuiteError
from flows.quality.suites import (
    BEFORE_LOAD_SUITES,
    DEFAULT_DRIFT_MAX_DROP,
    DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE,
    SUITES_DIR,
    SuiteFile,
    read_suites,
    suite_parameters,
)
from flows.records import Checkpoint, ExpectationOutcome

log = logging.getLogger(__name__)

# a table name from the caller goes into SQL text, so it must be a plain schema.table
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


def _gx_suite(suite: SuiteFile, name: str | None = None) -> gx.ExpectationSuite:
    # ExpectationSuite logs and drops an expectation it cannot parse, so count them back
    document = json.loads(json.dumps(suite.document))
    if name is not None:
        document["name"] = name
    try:
        built = gx.ExpectationSuite(**document)
    except Exception as exc:  # GX raises pydantic, marshmallow or its own errors here
        raise SuiteError(suite.path, f"Great Expectations rejected it: {exc}") from exc
    if len(built.expectations) != len(document["expectations"]):
        raise SuiteError(suite.path, "Great Expectations rejected an expectation (see its log)")
    return built


def _unsaved() -> None:
    """Nothing to persist: the ephemeral context keeps its config in memory."""


class QualityGate:
    """Validates batches before load and tables after load with one GX context."""

    def __init__(
        self,
        suites_dir: Path = SUITES_DIR,
        data_docs_dir: Path | None = None,
        *,
        reference_count_gap_tolerance: int = DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE,
        drift_max_drop: float = DEFAULT_DRIFT_MAX_DROP,
    ) -> None:
        self._suites = read_suites(suites_dir)
        self._data_docs_dir = data_docs_dir
        self._tolerance = reference_count_gap_tolerance
        self._max_drop = float(drift_max_drop)  # a float, never text, goes into the sql
        self._context = gx.get_context(mode="ephemeral")
        # every change to a context (an asset, a batch definition, a site) re-serialises its
        # whole config to YAML for its variables store; an ephemeral context's store is never
        # read back (its config object is the truth), so the 20 YAML dumps of each after-load
        # check and the 17 of this set-up are skipped
        setattr(self._context, "_save_project_config", _unsaved)  # noqa: B010
        # tqdm bars per validation would flood the flow's logs
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._configure_data_docs()
        self._before_load = self._before_load_validations()
        self._sql_sources: dict[str, Any] = {}
        # one GX context is not safe to drive from two threads: batches take turns
        self._lock = threading.RLock()
        self._after_load: dict[tuple[str, str], Any] = {}
        self._gx_suites: dict[str, gx.ExpectationSuite] = {}

    def _configure_data_docs(self, folder: Path | None = None) -> None:
        # the ephemeral context comes with a site in a temporary folder; point it at ours
        sites = self._context.get_site_names()
        for name in ("local_site", "tomeflow"):
            if name in sites:
                self._context.delete_data_docs_site(name)
        target = folder or self._data_docs_dir
        if target is None:
            return
        target.mkdir(parents=True, exist_ok=True)
        self._context.add_data_docs_site(
            "tomeflow",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(target),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )

    def _before_load_validations(self) -> dict[str, Any]:
        source = self._context.data_sources.add_pandas("batches")
        validations = {}
        for name in BEFORE_LOAD_SUITES:
            asset = source.add_dataframe_asset(name)
            batch_definition = asset.add_batch_definition_whole_dataframe("batch")
            suite = self._context.suites.add(_gx_suite(self._suites[name]))
            validations[name] = self._context.validation_definitions.add(
                gx.ValidationDefinition(
                    name=f"before_load.{name}", data=batch_definition, suite=suite
                )
            )
        return validations

    def validate_rows(
        self, rows: Mapping[str, Sequence[tuple[Any, ...]]], batch: int
    ) -> QualityReport:
        """validate_batch on the frames of each suite's rows (tuples in the frame's columns)."""
        return self.validate_batch({s: batch_frame(s, r) for s, r in rows.items()}, batch)

    def validate_batch(self, frames: Mapping[str, pd.DataFrame], batch: int) -> QualityReport:
        """Run every before-load suite on its frame of this batch."""
        with self._lock:
            return self._validate_batch(frames, batch)

    def _validate_batch(self, frames: Mapping[str, pd.DataFrame], batch: int) -> QualityReport:
        unknown = sorted(set(frames) - set(BEFORE_LOAD_SUITES))
        absent = [name for name in BEFORE_LOAD_SUITES if name not in frames]
        if unknown or absent:
            raise QualityGateError(
                "before_load", f"frames missing: {absent or '-'}; not known: {unknown or '-'}"
            )
        parameters = suite_parameters(dt.date.today(), self._tolerance)
        run = RunIdentifier(run_name=f"before_load-batch-{batch}", run_time=_now())
        outcomes: list[ExpectationOutcome] = []
        failures: list[RowFailure] = []
        started = time.perf_counter()
        for name in BEFORE_LOAD_SUITES:
            suite = self._suites[name]
            frame = prepared(name, frames[name], suite.columns)
            validation = self._before_load[name]
            # a first pass asks only whether each expectation held, which costs GX about half
            # of a full pass; only a suite that failed is run again for counts and rows
            result = validation.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters,
                result_format={"result_format": "BOOLEAN_ONLY"},
                run_id=run,
            )
            if result.success:
                outcomes.extend(
                    _held(res, "before_load", batch, name, len(frame))
                    for res in _in_suite_order(result.results, validation.suite)
                )
                continue
            result = validation.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters,
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": list(suite.key),
                    "return_unexpected_index_query": False,
                },
                run_id=run,
            )
            for res in _in_suite_order(result.results, validation.suite):
                outcome = _outcome(res, "before_load", batch, name)
                outcomes.append(outcome)
                if outcome.policy == "quarantine" and not outcome.success:
                    failures.extend(_row_failures(res, name, suite.key))
        log.debug("before_load batch %s validated in %.3fs", batch, time.perf_counter() - started)
        return QualityReport(tuple(outcomes), tuple(failures))

    def validate_tables(
        self,
        sqlalchemy_url: str,
        run_id: uuid.UUID,
        batch: int,
        expected: Mapping[str, int],
    ) -> QualityReport:
        """Run the after-load suites on PostgreSQL; expected maps table -> rows of this run."""
        with self._lock:
            return self._validate_tables(sqlalchemy_url, run_id, batch, expected)

    def _validate_tables(
        self,
        sqlalchemy_url: str,
        run_id: uuid.UUID,
        batch: int,
        expected: Mapping[str, int],
    ) -> QualityReport:
        url = to_sqlalchemy_url(sqlalchemy_url)
        run = RunIdentifier(run_name=f"after_load-{run_id}-batch-{batch}", run_time=_now())
        outcomes: list[ExpectationOutcome] = []
        started = time.perf_counter()
        for suite in self._suites.values():
            if suite.checkpoint != "after_load" or (suite.run_counts and not expected):
                continue
            validation = self._table_validation(url, suite, run_id, expected)
            outcomes.extend(self._run_after_load(validation, batch, run))
        log.debug("after_load batch %s validated in %.3fs", batch, time.perf_counter() - started)
        # after-load checks are about tables, not rows: nothing to quarantine row by row
        return QualityReport(tuple(outcomes), ())

    def _run_after_load(
        self, validation: Any, batch: int, run: RunIdentifier
    ) -> list[ExpectationOutcome]:
        # as before load: a cheap pass first, the full one only for a suite that failed
        result = validation.run(result_format={"result_format": "BOOLEAN_ONLY"}, run_id=run)
        if result.success:
            return [
                _held(res, "after_load", batch, validation.suite.name, None)
                for res in _in_suite_order(result.results, validation.suite)
            ]
        result = validation.run(
            result_format={"result_format": "SUMMARY", "return_unexpected_index_query": False},
            run_id=run,
        )
        return [
            _outcome(res, "after_load", batch, validation.suite.name)
            for res in _in_suite_order(result.results, validation.suite)
        ]

    def _table_validation(
        self, url: str, suite: SuiteFile, run_id: uuid.UUID, expected: Mapping[str, int]
    ) -> Any:
        # a query that names the run (its rows, its counts) is made for each call, once per
        # run in the flow; a suite over whole tables once per database
        assert suite.query is not None
        per_run = suite.run_counts or "{run_id}" in suite.query
        cached = self._after_load.get((url, suite.name))
        if cached is not None and not per_run:
            return cached
        query = suite.query
        asset_name = suite.name
        if per_run:
            counts = _run_counts_query(suite.name, run_id, expected) if suite.run_counts else ""
            query = query.format(
                counts=counts, run_id=uuid.UUID(str(run_id)), max_drop=self._max_drop
            )
            asset_name = f"{suite.name}.{uuid.uuid4().hex}"
        source = self._sql_source(url)
        batch_definition = source.add_query_asset(
            asset_name, query=query
        ).add_batch_definition_whole_table("all")
        gx_suite = self._gx_suites.get(suite.name)
        if gx_suite is None:
            gx_suite = self._gx_suites[suite.name] = self._context.suites.add(_gx_suite(suite))
        validation = self._context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"after_load.{source.name}.{asset_name}",
                data=batch_definition,
                suite=gx_suite,
            )
        )
        self._after_load[(url, suite.name)] = validation
        return validation

    def _sql_source(self, url: str) -> Any:
        source = self._sql_sources.get(url)
        if source is None:
            # add_sql, not add_postgres: add_postgres rejects socket-only urls (?host=/dir);
            # GX warns that a postgres source would suit better, which is the point of not
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=GxDatasourceWarning)
                source = self._context.data_sources.add_sql(
                    f"postgres_{len(self._sql_sources) + 1}", connection_string=url
                )
            self._sql_sources[url] = source
        return source

    def build_data_docs(self, run_name: str | None = None, keep: int = 10) -> Path:
        """Write offline GX Data Docs of every validation this gate ran; returns index.html.

        With a run name they go to runs/<run name>/ beside the last `keep` runs' (whose
        index the folder's own index.html lists); without, straight into the folder.
        """
        root = self._data_docs_dir
        if root is None:
            raise QualityGateError("data_docs", "the gate was made without a data_docs_dir")
        site = root if run_name is None else docs.run_folder(root, run_name)
        with self._lock:
            self._configure_data_docs(site)
            self._context.build_data_docs(site_names=["tomeflow"])
        docs.make_offline(root, site)
        if run_name is not None:
            docs.write_index(root, docs.keep_last(root, keep))
        return site / "index.html"


def _run_counts_query(suite: str, run_id: uuid.UUID, expected: Mapping[str, int]) -> str:
    """One row per table: the rows the run wrote, those carrying its id, and whether it overlapped.

    A run that overlapped another may find fewer rows carrying its id than it wrote: the other
    run rewrote some after it (a newer fetch time, say). Never more.
    """
    run = uuid.UUID(str(run_id))  # a uuid, never text from elsewhere, goes into the sql
    overlapped = (
        f"exists (select 1 from ops.runs o, ops.runs me where me.run_id = '{run}'"
        f" and o.run_id <> me.run_id and o.started_at < now()"
        f" and (o.ended_at is null or o.ended_at > me.started_at))"
    )
    parts = []
    for table, rows in expected.items():
        if not _TABLE_NAME.match(table):
            raise QualityGateError(suite, f"not a schema.table name: {table!r}")
        parts.append(
            f"select '{table}'::text as table_name, {int(rows)}::bigint as expected_rows, "
            f"(select count(*) from {table} where run_id = '{run}') as written_rows, "
            f"{overlapped} as overlapped"
        )
    return " union all ".join(parts)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _in_suite_order(results: Iterable[Any], suite: gx.ExpectationSuite) -> list[Any]:
    # GX returns results grouped by metric, not in the order the suite lists them
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    return sorted(results, key=lambda r: order.get(r.expectation_config.id, len(order)))


def _outcome(res: Any, checkpoint: Checkpoint, batch: int, suite: str) -> ExpectationOutcome:
    config = res.expectation_config
    raised = _raised(res.exception_info)
    if raised is not None:
        raise QualityGateError(suite, f"{config.type} could not be evaluated: {raised}")
    result = res.result or {}
    if "observed_value" in result:
        observed = result["observed_value"]
    elif not res.success:
        observed = result.get("partial_unexpected_list")
    else:
        observed = None
    return ExpectationOutcome(
        checkpoint=checkpoint,
        batch=batch,
        suite=suite,
        expectation=config.type,
        column=_column_of(config.kwargs),
        success=bool(res.success),
        observed_value=_jsonable(observed),
        unexpected_count=_optional_int(result.get("unexpected_count")),
        unexpected_percent=_optional_float(result.get("unexpected_percent")),
        element_count=_optional_int(result.get("element_count")),
        policy=str(config.meta["policy"]),
    )


def _held(
    res: Any, checkpoint: Checkpoint, batch: int, suite: str, rows: int | None
) -> ExpectationOutcome:
    # an expectation that held in a BOOLEAN_ONLY pass: nothing unexpected (on any of the
    # frame's rows, before load); GX reported no counts, so they are filled in here
    return replace(
        _outcome(res, checkpoint, batch, suite),
        unexpected_count=0,
        unexpected_percent=0.0,
        element_count=rows,
    )


def _row_failures(res: Any, suite: str, key: tuple[str, ...]) -> list[RowFailure]:
    config = res.expectation_config
    column = config.kwargs.get("column")
    column_list = config.kwargs.get("column_list")
    failures = []
    for row in (res.result or {}).get("unexpected_index_list") or []:
        if column_list:
            value: object = [_jsonable(row.get(c)) for c in column_list]
        else:
            value = _jsonable(row.get(column))
        paper_id = _jsonable(row.get("paper_id"))
        failures.append(
            RowFailure(
                suite=suite,
                paper_id="" if paper_id is None else str(paper_id),
                key=tuple(_jsonable(row.get(k)) for k in key),
                expectation=config.type,
                column=_column_of(config.kwargs),
                value=value,
            )
        )
    return failures


def _raised(info: Any) -> str | None:
    # one dict for the expectation, or one per metric it needed
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    for detail in info.values():
        if isinstance(detail, Mapping) and detail.get("raised_exception"):
            return str(detail.get("exception_message"))
    return None


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_list"):
        return ",".join(kwargs["column_list"])
    return None


def _jsonable(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    converted = convert_to_json_serializable(value)
    if isinstance(converted, float) and math.isnan(converted):
        return None
    return converted


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
