"""The frames the before-load suites validate: one pandas frame per record kind of a batch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from flows.quality.results import QualityGateError
from flows.quality.verdict import batch_rows
from flows.records import PaperLoad
from flows.tables import VALIDATED

# the frames validate_batch expects, derived from the table declarations: text columns hold
# str or None (pandas' default str dtype), published_on holds datetime.date or None, integers
# are nullable Int64
FRAME_DTYPES: Mapping[str, Mapping[str, str]] = {
    suite: table.frame_dtypes for suite, table in VALIDATED.items()
}


def batch_frames(loads: Sequence[PaperLoad]) -> dict[str, pd.DataFrame]:
    """The frames the before-load suites validate, from the papers whose rows will be written."""
    return {suite: batch_frame(suite, rows) for suite, rows in batch_rows(loads).items()}


def batch_frame(
    kind: str, rows: Iterable[Mapping[str, object] | tuple[object, ...]]
) -> pd.DataFrame:
    """A frame of one record kind (rows as tuples in column order, or as mappings)."""
    dtypes = FRAME_DTYPES[kind]
    frame = pd.DataFrame(list(rows), columns=list(dtypes))
    return frame.astype(dict(dtypes))


def prepared(name: str, frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    missing = sorted(set(columns) - set(frame.columns))
    if missing and len(frame):
        raise QualityGateError(name, f"frame lacks columns {missing}")
    if missing:
        # an empty batch may come without columns; the suite still needs them to exist
        frame = frame.reindex(columns=[*frame.columns, *missing])
    if frame.index.names != [None] or not frame.index.is_unique:
        # GX reads a named index instead of our key columns, and a repeated label breaks its
        # row lookup; failing rows are identified by their key columns anyway
        frame = frame.reset_index(drop=True)
    whole = [
        c
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.Int64Dtype) and not frame[c].hasnans
    ]
    if whole:
        # GX checks a numpy int64 column's bounds in one vectorised step, a nullable Int64
        # column's value by value in Python; without a missing value the two hold the same
        frame = frame.astype(dict.fromkeys(whole, "int64"))
    datetimes = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if datetimes:
        # GX coerces ISO bounds to datetime.date, which a pandas Timestamp will not compare with
        frame = frame.copy()
        for column in datetimes:
            frame[column] = pd.Series(
                [None if pd.isna(v) else v.date() for v in frame[column]],
                index=frame.index,
                dtype=object,
            )
    return frame
