"""The run summary and the data-quality tally (flows/report.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from flows.load.runlog import RunCounts
from flows.records import ExpectationOutcome, QuarantineRow
from flows.report import DataQuality, StageTimes, summarise


def outcome(batch: int, success: bool, suite: str = "papers") -> ExpectationOutcome:
    return ExpectationOutcome(
        "before_load", batch, suite, "expect_column_values_to_be_between", "published_on",
        success, None, 0 if success else 2, 0.0 if success else 40.0, 5, "quarantine",
    )  # fmt: skip


def test_expectations_are_folded_across_batches() -> None:
    dq = DataQuality()
    dq.add([outcome(1, True), outcome(1, True, "authors")])
    dq.add([outcome(2, False), outcome(2, True, "authors")])
    assert dq.headline() == (
        "data quality: 1 of 2 expectations held; failed: "
        "papers.expect_column_values_to_be_between(published_on)"
    )
    (failed,) = dq.failed
    assert (failed.evaluations, failed.failures, failed.unexpected, failed.elements) == (
        2,
        1,
        2,
        10,
    )
    assert "**no** (1 of 2 batches)" in dq.to_markdown()


def test_the_summary_says_what_loaded_what_failed_and_where_to_look() -> None:
    counts = RunCounts(
        seen=3, new=2, failed=1, quarantined=1, fetch_statuses={"fetched": 2, "not_found": 1}
    )
    counts.row_counts = {"core.papers": 2}
    times = StageTimes()
    with times.stage("load"):
        pass
    summary = summarise(
        uuid.uuid4(), "ingest-2026-11-25", "failed",
        "postgresql://tomeflow:s3cret@db:5432/tomeflow", counts,
        [QuarantineRow("seeds/x.md", "parse", "not a summary page", True, line=1)], 7,
        DataQuality(), Path("/tmp/docs/index.html"), ["batch 2 not loaded: ..."], times, 1.5,
    )  # fmt: skip
    text = summary.to_text()
    assert "papers: 2 new, 0 updated, 0 unchanged, 1 full text failed, 1 quarantined (of 3" in text
    assert "full text: 2 fetched, 1 not_found" in text
    assert "seeds/x.md:1: [parse] not a summary page" in text and "and 6 more" in text
    assert "batch 2 not loaded" in text and "data docs: /tmp/docs/index.html" in text
    assert "s3cret" not in text and "psql -h db -p 5432 -U tomeflow tomeflow" in text
    markdown = summary.to_markdown()
    for part in ("## Full text", "## Data quality", "## Quarantine (7)", "## Problems", "## Time"):
        assert part in markdown
    assert "s3cret" not in markdown


def test_changes_beyond_the_first_few_are_counted_in_text_and_markdown() -> None:
    from dataclasses import replace

    from flows.records import PaperChange, RunChanges

    summary = summarise(
        uuid.uuid4(), "ingest-2026-12-01", "completed", "postgresql://u@db/x", RunCounts(),
        [], 0, DataQuality(), None, [], StageTimes(), 1.0,
    )  # fmt: skip
    shown = (PaperChange("PMC1", "updated", ("title",)), PaperChange("PMC2", "added", ()))
    summary = replace(summary, changes=RunChanges(added=5, updated=1, shown=shown))
    text = summary.to_text()
    assert "  PMC1: updated (title)\n  PMC2: added\n  ... and 4 more in analytics.run_diff" in text
    assert "\n\n... and 4 more in analytics.run_diff\n" in summary.to_markdown()


def test_overlapping_batches_count_once_in_a_stage_s_wall_seconds() -> None:
    from flows.records import BatchOutcome
    from flows.report import RunTally

    def batch(number: int, load: tuple[float, float]) -> BatchOutcome:
        return BatchOutcome(number, 1, (), 0, 0, 0, {}, None, None, (),
                            seconds={"load": load[1] - load[0]}, spans={"load": load})  # fmt: skip

    tally = RunTally()
    for number, span in enumerate(((10.0, 14.0), (12.0, 16.0), (20.0, 21.0)), 1):
        tally.add(batch(number, span))
    # 4 + 4 + 1 s summed over the batches; a batch was loading during 10-16 and 20-21
    assert tally.times.seconds == {"load": 9.0}
    assert tally.times.busy() == {"load": 7.0}
    summary = summarise(
        uuid.uuid4(), "ingest", "completed", "postgresql://u@db/x", RunCounts(),
        [], 0, DataQuality(), None, [], tally.times, 12.0,
    )  # fmt: skip
    assert summary.stage_busy_seconds == {"load": 7.0}
    assert "| load | 9.00 | 7.00 |" in summary.to_markdown()


def test_an_estimated_total_is_marked_and_explained_in_text_and_markdown() -> None:
    counts = RunCounts(rows_written={"core.entity_mentions": 40})
    counts.row_counts = {"core.papers": 12, "core.entity_mentions": 2_400_000}
    counts.rows_of_run = {"core.papers": 1, "core.entity_mentions": 40}
    counts.estimated = frozenset({"core.entity_mentions"})
    summary = summarise(
        uuid.uuid4(), "ingest-2026-12-07", "completed", "postgresql://u@db/x", counts,
        [], 0, DataQuality(), None, [], StageTimes(), 1.0,
    )  # fmt: skip
    text = summary.to_text()
    assert [s.split()[:3] for s in text.splitlines() if s.startswith("  core.")] == [
        ["core.papers", "1", "12"],
        ["core.entity_mentions", "40", "~2400000"],
    ]
    assert "~: PostgreSQL's estimate" in text and "TOMEFLOW_EXACT_ROW_COUNTS_BELOW" in text
    markdown = summary.to_markdown()
    assert "| `core.entity_mentions` | 40 | ~2400000 |" in markdown
    assert "| `core.papers` | 1 | 12 |" in markdown and "~: PostgreSQL's estimate" in markdown
