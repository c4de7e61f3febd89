"""core and ops tables for summary pages

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LINEAGE = """
    run_id uuid not null references ops.runs (run_id),
    source_sha256 text not null check (source_sha256 ~ '^[0-9a-f]{64}$')
"""

LINEAGE_COMMENTS = """
comment on column {t}.run_id is 'ops.runs row of the flow run that last wrote this row';
comment on column {t}.source_sha256 is 'sha256 of the source document this row was read from';
"""


def upgrade() -> None:
    op.execute("create schema if not exists core")
    op.execute("create schema if not exists ops")
    op.execute("create schema if not exists analytics")
    op.execute("comment on schema core is 'tomeflow: papers and entities read from summary pages'")
    op.execute("comment on schema ops is 'tomeflow: run log and quarantined input'")
    op.execute("comment on schema analytics is 'tomeflow: views for analysts'")

    op.execute(
        """
        create table ops.runs (
            run_id uuid primary key,
            flow_run_name text,
            started_at timestamptz not null default now(),
            ended_at timestamptz,
            status text not null default 'running'
                check (status in ('running', 'completed', 'failed', 'crashed')),
            seeds text,
            papers_seen integer not null default 0,
            papers_new integer not null default 0,
            papers_updated integer not null default 0,
            papers_unchanged integer not null default 0,
            papers_failed integer not null default 0,
            papers_quarantined integer not null default 0,
            row_counts jsonb not null default '{}'::jsonb,
            message text
        );
        comment on table ops.runs is 'one row per ingest flow run';
        comment on column ops.runs.run_id is 'the Prefect flow-run id (a fresh uuid when run without Prefect)';
        comment on column ops.runs.flow_run_name is 'the Prefect flow-run name, e.g. ingest-2026-11-24';
        comment on column ops.runs.status is 'running, completed, failed or crashed';
        comment on column ops.runs.seeds is 'the seed folder or file the run read';
        comment on column ops.runs.papers_seen is 'seed documents read';
        comment on column ops.runs.papers_new is 'papers loaded for the first time';
        comment on column ops.runs.papers_updated is 'papers whose source changed and were replaced';
        comment on column ops.runs.papers_unchanged is 'papers whose source was unchanged; not rewritten';
        comment on column ops.runs.papers_failed is 'papers loaded without their full text (fetch failed)';
        comment on column ops.runs.papers_quarantined is 'documents rejected whole, see ops.quarantine';
        comment on column ops.runs.row_counts is 'rows per table after the run';
        comment on column ops.runs.message is 'why the run failed, when it did';

        create table ops.quarantine (
            quarantine_id bigint generated always as identity primary key,
            run_id uuid not null references ops.runs (run_id),
            document text not null,
            paper_id text,
            stage text not null check (stage in ('parse', 'fetch', 'fulltext', 'normalise', 'validate', 'load')),
            line integer,
            reason text not null,
            payload jsonb,
            rejected_whole boolean not null,
            created_at timestamptz not null default now()
        );
        create index on ops.quarantine (run_id);
        create index on ops.quarantine (paper_id);
        comment on table ops.quarantine is 'input tomeflow could not load, with the reason; one row per problem per run';
        comment on column ops.quarantine.document is 'path or url of the document';
        comment on column ops.quarantine.paper_id is 'the paper, when it could be read';
        comment on column ops.quarantine.stage is 'the stage that rejected it: parse, fetch, fulltext, normalise, validate or load';
        comment on column ops.quarantine.line is '1-based line in the document, when known';
        comment on column ops.quarantine.reason is 'why it was rejected';
        comment on column ops.quarantine.payload is 'the offending text or value';
        comment on column ops.quarantine.rejected_whole is 'true: nothing of the document loaded; false: only this part was left out';
        """
    )

    op.execute(
        f"""
        create table core.papers (
            paper_id text primary key,
            source text not null,
            title text not null check (title <> ''),
            doi text,
            journal text,
            published_on date,
            tldr text not null default '',
            contribution text not null default '',
            abstract text not null default '',
            fulltext_url text,
            stated_reference_count integer,
            references_url text,
            source_url text,
            seed_path text not null,
            content_sha256 text not null,
            loaded_at timestamptz not null default now(),
            {LINEAGE}
        );
        create index on core.papers (doi);
        comment on table core.papers is 'one row per paper, from its summary page';
        comment on column core.papers.paper_id is 'the source''s id: PMC12809390, an arXiv id such as 2006.14810, ...';
        comment on column core.papers.source is 'source label as written on the page: PMC, arXiv, ...';
        comment on column core.papers.title is 'paper title';
        comment on column core.papers.doi is 'DOI without the https://doi.org/ prefix';
        comment on column core.papers.journal is 'journal or venue';
        comment on column core.papers.published_on is 'publication date (first of month/year when only those are given)';
        comment on column core.papers.tldr is 'one-sentence summary';
        comment on column core.papers.contribution is 'the paper''s contribution, as summarised';
        comment on column core.papers.abstract is 'abstract, paragraphs separated by a blank line';
        comment on column core.papers.fulltext_url is 'where the full text is published as Markdown';
        comment on column core.papers.stated_reference_count is 'number of references the summary page states';
        comment on column core.papers.references_url is 'where the full reference list is';
        comment on column core.papers.source_url is 'the summary page''s own url';
        comment on column core.papers.seed_path is 'seed file the paper was read from';
        comment on column core.papers.content_sha256 is 'hash over everything the paper''s rows derive from; equal means unchanged and not rewritten';
        comment on column core.papers.loaded_at is 'when this row was last written';

        create table core.authors (
            author_id bigint generated always as identity primary key,
            name text not null unique,
            {LINEAGE}
        );
        comment on table core.authors is 'one row per distinct author name across papers';
        comment on column core.authors.author_id is 'surrogate key';
        comment on column core.authors.name is 'author name as written';

        create table core.paper_authors (
            paper_id text not null references core.papers (paper_id) on delete cascade,
            position integer not null check (position >= 1),
            author_id bigint not null references core.authors (author_id),
            {LINEAGE},
            primary key (paper_id, position)
        );
        create index on core.paper_authors (author_id);
        comment on table core.paper_authors is 'authors of each paper, in order';
        comment on column core.paper_authors.position is '1-based position in the author list';

        create table core.key_findings (
            paper_id text not null references core.papers (paper_id) on delete cascade,
            ordinal integer not null check (ordinal >= 1),
            finding text not null,
            {LINEAGE},
            primary key (paper_id, ordinal)
        );
        comment on table core.key_findings is 'key findings of each paper, in order';
        comment on column core.key_findings.ordinal is '1-based position in the list';
        comment on column core.key_findings.finding is 'the finding as written';

        create table core.entities (
            curie text primary key,
            prefix text not null,
            local_id text not null,
            entity_type text not null
                check (entity_type in ('gene', 'disease', 'species', 'chemical', 'variant', 'cell line', 'other')),
            preferred_name text not null,
            symbol text,
            full_name text,
            common_name text,
            {LINEAGE}
        );
        create index on core.entities (entity_type);
        comment on table core.entities is 'one row per identifier across all papers';
        comment on column core.entities.curie is 'canonical identifier, Bioregistry style: NCBIGene:3630, MESH:D005234, NCBITaxon:9606';
        comment on column core.entities.prefix is 'the CURIE prefix (namespace)';
        comment on column core.entities.local_id is 'the CURIE local identifier';
        comment on column core.entities.entity_type is 'gene, disease, species, chemical, variant, cell line or other';
        comment on column core.entities.preferred_name is 'display name chosen by the rule in README (most papers, then alphabetical)';
        comment on column core.entities.symbol is 'genes: the official symbol as listed (INS)';
        comment on column core.entities.full_name is 'genes: the full name (insulin)';
        comment on column core.entities.common_name is 'species: the common name (human)';

        create table core.paper_entities (
            paper_id text not null references core.papers (paper_id) on delete cascade,
            curie text not null references core.entities (curie),
            listing text not null check (listing in ('linked', 'fulltext')),
            category text not null,
            name_as_written text not null,
            line integer,
            {LINEAGE},
            primary key (paper_id, curie, listing)
        );
        create index on core.paper_entities (curie);
        comment on table core.paper_entities is 'entities each paper lists';
        comment on column core.paper_entities.listing is 'linked (Linked entities) or fulltext (Full-text entities)';
        comment on column core.paper_entities.category is 'the list label as written: Genes, Diseases, Species, ...';
        comment on column core.paper_entities.name_as_written is 'the entity''s name as the page writes it';
        comment on column core.paper_entities.line is 'line of the summary page that lists it';

        create table core.paper_entity_names (
            paper_id text not null references core.papers (paper_id) on delete cascade,
            curie text not null references core.entities (curie),
            name text not null,
            kind text not null check (kind in ('name', 'full_name', 'common_name', 'alias')),
            {LINEAGE},
            primary key (paper_id, curie, name)
        );
        create index on core.paper_entity_names (curie);
        comment on table core.paper_entity_names is 'every name each paper gives an entity; source of core.entity_aliases';
        comment on column core.paper_entity_names.kind is 'name (as listed), full_name (gene), common_name (species) or alias (after aka)';

        create table core.entity_aliases (
            curie text not null references core.entities (curie) on delete cascade,
            alias text not null,
            kind text not null,
            paper_count integer not null check (paper_count >= 1),
            {LINEAGE},
            primary key (curie, alias)
        );
        create index on core.entity_aliases (lower(alias));
        comment on table core.entity_aliases is 'every name and alias seen for an entity, with how many papers use it';
        comment on column core.entity_aliases.alias is 'the name or alias as written';
        comment on column core.entity_aliases.kind is 'name, full_name, common_name or alias (the first kind seen, in that order)';
        comment on column core.entity_aliases.paper_count is 'papers that give the entity this name';
        """
    )
    for table in (
        "core.papers",
        "core.authors",
        "core.paper_authors",
        "core.key_findings",
        "core.entities",
        "core.paper_entities",
        "core.paper_entity_names",
        "core.entity_aliases",
    ):
        op.execute(LINEAGE_COMMENTS.format(t=table))
    op.execute(
        """
        comment on column ops.runs.started_at is 'when the run started';
        comment on column ops.runs.ended_at is 'when the run ended; null while running';
        comment on column ops.quarantine.quarantine_id is 'surrogate key';
        comment on column ops.quarantine.run_id is 'the run that rejected it';
        comment on column ops.quarantine.created_at is 'when it was rejected';
        comment on column core.paper_authors.paper_id is 'the paper (core.papers)';
        comment on column core.paper_authors.author_id is 'the author (core.authors)';
        comment on column core.key_findings.paper_id is 'the paper (core.papers)';
        comment on column core.paper_entities.paper_id is 'the paper (core.papers)';
        comment on column core.paper_entities.curie is 'the entity (core.entities)';
        comment on column core.paper_entity_names.paper_id is 'the paper (core.papers)';
        comment on column core.paper_entity_names.curie is 'the entity (core.entities)';
        comment on column core.paper_entity_names.name is 'the name as the paper writes it';
        comment on column core.entity_aliases.curie is 'the entity (core.entities)';
        """
    )


def downgrade() -> None:
    op.execute("drop schema if exists analytics cascade")
    op.execute("drop schema if exists core cascade")
    op.execute("drop schema if exists ops cascade")
