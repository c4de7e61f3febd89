"""lighter per-row checks on the large tables; their integrity is checked after each load

A load of 500 papers writes tens of thousands of section, reference and mention rows. Per row,
PostgreSQL ran a regular expression (source_sha256) and looked up ops.runs (run_id) and, for
mentions, core.entities and core.sections; together these took most of the load's time (see
`make bench`). The hash check becomes a length check; the run and mention foreign keys go.
What they guaranteed is checked once per run by the after-load suites in
schemas/expectations/tables.*.json (orphan mentions, rows per run), and every one of these
tables is written by one code path in one transaction (flows/load.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LINEAGE_TABLES = (
    "papers",
    "authors",
    "paper_authors",
    "key_findings",
    "entities",
    "paper_entities",
    "paper_entity_names",
    "entity_aliases",
    "sections",
    "paper_references",
    "captions",
    "entity_mentions",
)
# core.papers keeps its run_id foreign key: one row per paper, and the run log's anchor
RUN_FK_DROPPED = LINEAGE_TABLES[1:]


def upgrade() -> None:
    for table in LINEAGE_TABLES:
        op.execute(
            f"""alter table core.{table} drop constraint {table}_source_sha256_check,
                add constraint {table}_source_sha256_check
                    check (char_length(source_sha256) = 64)"""
        )
    for table in RUN_FK_DROPPED:
        op.execute(f"alter table core.{table} drop constraint {table}_run_id_fkey")
    op.execute(
        """alter table core.entity_mentions
               drop constraint entity_mentions_curie_fkey,
               drop constraint entity_mentions_paper_id_section_ordinal_fkey"""
    )


def downgrade() -> None:
    op.execute(
        """alter table core.entity_mentions
               add constraint entity_mentions_curie_fkey
                   foreign key (curie) references core.entities (curie),
               add constraint entity_mentions_paper_id_section_ordinal_fkey
                   foreign key (paper_id, section_ordinal)
                   references core.sections (paper_id, ordinal) on delete cascade"""
    )
    for table in RUN_FK_DROPPED:
        op.execute(
            f"""alter table core.{table} add constraint {table}_run_id_fkey
                foreign key (run_id) references ops.runs (run_id)"""
        )
    for table in LINEAGE_TABLES:
        op.execute(
            f"""alter table core.{table} drop constraint {table}_source_sha256_check,
                add constraint {table}_source_sha256_check
                    check (source_sha256 ~ '^[0-9a-f]{{64}}$')"""
        )
