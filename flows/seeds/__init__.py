"""The seeds stage: summary pages -> PaperRecords.

page.py     a page as blocks under its `##` sections (the shared Markdown walker)
summary.py  parse_summary: one page -> PaperRecord, or SeedParseError
batch.py    discover seed files, parse a batch, drop repeated paper ids
"""

from flows.seeds.batch import (
    SEED_SUFFIXES,
    SeedBatch,
    all_unchanged,
    discover_seeds,
    document_name,
    drop_duplicate_ids,
    parse_batch,
    read_seed,
    seeds_root,
)
from flows.seeds.summary import SeedParseError, paper_id_source, parse_summary

__all__ = [
    "SEED_SUFFIXES",
    "SeedBatch",
    "SeedParseError",
    "all_unchanged",
    "discover_seeds",
    "document_name",
    "drop_duplicate_ids",
    "paper_id_source",
    "parse_batch",
    "parse_summary",
    "read_seed",
    "seeds_root",
]
