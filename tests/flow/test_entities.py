"""Entities through the flow: one vocabulary, mentions in the full text, the analyst views."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from flows.ingest import ingest
from tests.helpers import REAL_FULLTEXT, REAL_SEED, query, snapshot, write_seed
from tests.http_server import ScriptedHTTPServer, markdown

pytestmark = pytest.mark.usefixtures("prefect_server")

# mentions of the real seed's entities in tests/data/fulltext/PMC12809390.md, by the rules of
# flows/mentions.py (checked by hand against the text: e.g. INS counts "insulin" and "INS")
REAL_MENTIONS = {
    "MESH:C536030": 3,  # loss of skeletal muscle mass
    "MESH:D005234": 4,  # hepatic steatosis
    "MESH:D005355": 3,  # fibrosis, where "liver fibrosis" does not win the span
    "MESH:D007249": 3,  # inflammation
    "MESH:D008103": 6,  # liver fibrosis
    "MESH:D008107": 8,  # liver disease
    "MESH:D008659": 1,  # metabolic dysfunction, outside "...-associated steatotic liver disease"
    "MONDO:0013209": 2,  # metabolic dysfunction-associated steatotic liver disease
    "NCBIGene:3630": 9,  # INS, insulin
    "NCBITaxon:9606": 3,  # Homo sapiens, human
}

# a second paper that names an entity of the first differently, uses "fibrosis" for another
# identifier, and lists a gene its text never mentions
OTHER = """# Scarring in the liver

**Authors:** Ana Müller-Łukasz

PMC · DOI: 10.5555/other.1 · Journal of Tests · 2024-05-01

## Linked entities

- **Diseases:** liver scarring (MESH:D008103)

## Full-text entities

- **Genes:** TNF (tumor necrosis factor) [NCBI Gene 7124]
- **Diseases:** fibrosis (MONDO:0002974)

## Full text

Fetch the complete paper as Markdown: https://tomesphere.com/paper/PMC2/full.md

---
Source: https://tomesphere.com/paper/PMC2
"""
OTHER_FULLTEXT = "# Scarring in the liver\n\n## Results\n\nLiver scarring, or fibrosis, grew.\n"


@pytest.fixture
def seeds(tmp_path: Path, http_server: ScriptedHTTPServer) -> Path:
    folder = tmp_path / "seeds"
    http_server.route("/paper/PMC12809390/full.md", markdown(REAL_FULLTEXT.read_text("utf-8")))
    http_server.route("/paper/PMC2/full.md", markdown(OTHER_FULLTEXT))
    write_seed(folder, "PMC12809390.md", REAL_SEED.read_text("utf-8"), http_server.base_url)
    write_seed(folder, "PMC2.md", OTHER, http_server.base_url)
    return folder


def test_mentions_of_the_real_seed(seeds: Path, tomeflow_env: str) -> None:
    ingest(seeds=str(seeds))
    url = tomeflow_env
    totals = dict(
        query(
            url,
            """select curie, sum(mention_count)::int from core.entity_mentions
               where paper_id = 'PMC12809390' group by curie""",
        )
    )
    assert totals == REAL_MENTIONS
    # INS per section: the abstract, the introduction, stellate cells, open questions, refs
    assert query(
        url,
        """select s.heading, m.mention_count from core.entity_mentions m
           join core.sections s on s.paper_id = m.paper_id and s.ordinal = m.section_ordinal
           where m.curie = 'NCBIGene:3630' and m.paper_id = 'PMC12809390' order by s.ordinal""",
    ) == [
        ("Abstract", 1),
        ("Introduction", 2),
        ("Hepatic stellate cells as targets", 2),
        ("Open questions", 2),
        ("References", 2),
    ]
    # the first offset points at the match in the section's text
    for text, offset in query(
        url,
        """select s.text, m.first_offset from core.entity_mentions m
           join core.sections s on s.paper_id = m.paper_id and s.ordinal = m.section_ordinal
           where m.curie = 'MESH:D008103'""",
    ):
        assert text[offset:].lower().startswith(("liver fibrosis", "liver scarring"))


def test_entity_papers_view_shows_every_entity_of_the_seed(seeds: Path, tomeflow_env: str) -> None:
    ingest(seeds=str(seeds))
    rows = query(
        tomeflow_env,
        """select curie, entity, entity_type, papers, total_mentions
           from analytics.entity_papers order by curie""",
    )
    assert rows == [
        ("MESH:C536030", "loss of skeletal muscle mass", "disease", 1, 3),
        ("MESH:D005234", "hepatic steatosis", "disease", 1, 4),
        ("MESH:D005355", "fibrosis", "disease", 1, 3),
        ("MESH:D007249", "inflammation", "disease", 1, 3),
        ("MESH:D008103", "liver fibrosis", "disease", 2, 7),
        ("MESH:D008107", "liver disease", "disease", 1, 8),
        ("MESH:D008659", "metabolic dysfunction", "disease", 1, 1),
        ("MONDO:0002974", "fibrosis", "disease", 1, 1),
        (
            "MONDO:0013209",
            "metabolic dysfunction-associated steatotic liver disease",
            "disease",
            1,
            2,
        ),
        ("NCBIGene:3630", "INS", "gene", 1, 9),
        ("NCBIGene:7124", "TNF", "gene", 1, 0),
        ("NCBITaxon:9606", "Homo sapiens", "species", 1, 3),
    ]


def test_one_curie_keeps_every_name_and_one_name_under_two_curies_is_a_collision(
    seeds: Path, tomeflow_env: str
) -> None:
    ingest(seeds=str(seeds))
    url = tomeflow_env
    assert query(
        url,
        "select alias, kind, paper_count from core.entity_aliases where curie = 'MESH:D008103' order by alias",
    ) == [("liver fibrosis", "name", 1), ("liver scarring", "name", 1)]
    # equal paper counts: the name first in code point order (casefolded) is preferred
    assert query(url, "select preferred_name from core.entities where curie = 'MESH:D008103'") == [
        ("liver fibrosis",)
    ]
    assert query(
        url,
        "select name, curie_count, curies, entity_types from analytics.entity_name_collisions",
    ) == [("fibrosis", 2, ["MESH:D005355", "MONDO:0002974"], ["disease"])]


def test_evidence_shows_what_the_text_mentions_and_what_it_never_does(
    seeds: Path, tomeflow_env: str
) -> None:
    ingest(seeds=str(seeds))
    url = tomeflow_env
    assert query(
        url,
        """select paper_id, curie, mentions from analytics.entity_evidence
           where not found_in_text order by paper_id, curie""",
    ) == [("PMC2", "NCBIGene:7124", 0)]
    assert query(
        url,
        "select paper_id, listed_entities, found_in_text, share_found from analytics.paper_evidence order by 1",
    ) == [("PMC12809390", 10, 10, Decimal("1.000")), ("PMC2", 3, 2, Decimal("0.667"))]
    assert query(
        url,
        """select gene, disease, papers, gene_mentions, disease_mentions
           from analytics.gene_disease_cooccurrence where gene = 'TNF' order by disease""",
    ) == [("TNF", "fibrosis", 1, 0, 1), ("TNF", "liver fibrosis", 1, 0, 1)]
    assert query(
        url,
        """select paper_title, entity, mentions from analytics.paper_entities
           where paper_id = 'PMC12809390' and entity_type = 'gene'""",
    ) == [("Blood, sweat, tears and fibrosis: when overtraining injures the liver", "INS", 9)]


def test_a_rerun_leaves_the_entity_tables_unchanged(seeds: Path, tomeflow_env: str) -> None:
    tables = (
        "core.entities",
        "core.entity_aliases",
        "core.paper_entities",
        "core.paper_entity_names",
        "core.entity_mentions",
    )
    ingest(seeds=str(seeds))
    before = snapshot(tomeflow_env, tables, exclude=("run_id",))
    ingest(seeds=str(seeds))
    ingest(seeds=str(seeds), full_refresh=True)  # refetched, reparsed, rewritten: same rows
    assert snapshot(tomeflow_env, tables, exclude=("run_id",)) == before
