"""shared rows that do not depend on batch order; run-id indexes for checks of a run's rows

core.entities holds one row per CURIE shared by every paper that lists it. Its details
(type, gene symbol and full name, species common name) came from whichever batch wrote the
row last, so loading the same papers in other batches, or in batches that run at once, gave
other rows. Each paper's listing now keeps the details it gives (core.paper_entities), and
core.entities is recomputed from them for the CURIEs a batch touches: the paper with the
highest id wins, whatever order the batches load in.

An index on core.papers.seed_path lets a run find, before parsing, the seeds whose bytes
are unchanged. BRIN indexes on run_id let the after-load checks read only the rows a run wrote: a run's
rows are appended together, so each block range holds one run or two; the index costs almost
nothing to keep up.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RUN_TABLES = (
    "core.papers",
    "core.paper_authors",
    "core.key_findings",
    "core.paper_entities",
    "core.paper_entity_names",
    "core.sections",
    "core.paper_references",
    "core.captions",
    "core.entity_mentions",
)


def upgrade() -> None:
    op.execute(
        """
        alter table core.paper_entities
            add column entity_type text,
            add column symbol text,
            add column full_name text,
            add column common_name text;
        update core.paper_entities pe set entity_type = e.entity_type, symbol = e.symbol,
            full_name = e.full_name, common_name = e.common_name
        from core.entities e where e.curie = pe.curie;
        update core.paper_entities set entity_type = 'other' where entity_type is null;
        alter table core.paper_entities alter column entity_type set not null,
            alter column entity_type set default 'other',
            add constraint paper_entities_entity_type_check check (entity_type in
                ('gene', 'disease', 'species', 'chemical', 'variant', 'cell line', 'other'));
        comment on column core.paper_entities.entity_type is 'the type this paper''s listing implies: gene, disease, species, chemical, variant, cell line or other';
        comment on column core.paper_entities.symbol is 'genes: the symbol as this paper lists it';
        comment on column core.paper_entities.full_name is 'genes: the full name this paper gives';
        comment on column core.paper_entities.common_name is 'species: the common name this paper gives';
        comment on column core.entities.entity_type is 'gene, disease, species, chemical, variant, cell line or other, as the listing paper with the highest id gives it';
        """
    )
    for table in RUN_TABLES:
        name = table.split(".")[1]
        op.execute(f"create index {name}_run_id_brin on {table} using brin (run_id)")
    # an unchanged seed is known by its path and bytes before it is parsed
    op.execute("create index papers_seed_path_idx on core.papers (seed_path)")


def downgrade() -> None:
    op.execute("drop index if exists core.papers_seed_path_idx")
    for table in RUN_TABLES:
        name = table.split(".")[1]
        op.execute(f"drop index if exists core.{name}_run_id_brin")
    op.execute(
        """
        alter table core.paper_entities
            drop column entity_type, drop column symbol, drop column full_name,
            drop column common_name
        """
    )
