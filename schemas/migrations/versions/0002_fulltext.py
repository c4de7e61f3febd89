"""raw fetch log, full-text status on papers, sections, references, captions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LINEAGE = """
    run_id uuid not null references ops.runs (run_id),
    source_sha256 text not null check (source_sha256 ~ '^[0-9a-f]{64}$')
"""


def upgrade() -> None:
    op.execute(
        """
        create schema if not exists raw;
        comment on schema raw is 'tomeflow: what was fetched, attempt by attempt';

        create table raw.fetches (
            fetch_id bigint generated always as identity primary key,
            run_id uuid not null references ops.runs (run_id),
            paper_id text not null,
            url text not null,
            attempt integer not null,
            status_code integer,
            bytes bigint not null default 0,
            sha256 text,
            etag text,
            last_modified text,
            elapsed_ms integer not null,
            error_class text,
            error_message text,
            started_at timestamptz not null
        );
        create index on raw.fetches (paper_id, started_at);
        create index on raw.fetches (run_id);
        comment on table raw.fetches is 'one row per HTTP attempt to fetch a full text (retries and redirect hops included)';
        comment on column raw.fetches.url is 'the url requested in this attempt';
        comment on column raw.fetches.attempt is '1-based attempt number within the fetch';
        comment on column raw.fetches.status_code is 'HTTP status, null when no response came (timeout, reset, refused)';
        comment on column raw.fetches.bytes is 'body bytes received';
        comment on column raw.fetches.sha256 is 'sha256 of the body; the body is in the raw store under this name';
        comment on column raw.fetches.etag is 'ETag response header';
        comment on column raw.fetches.last_modified is 'Last-Modified response header';
        comment on column raw.fetches.elapsed_ms is 'wall time of the attempt';
        comment on column raw.fetches.error_class is 'why the attempt failed: Timeout, ConnectionError, TooLarge, BadContent, HostNotAllowed, ...';
        comment on column raw.fetches.error_message is 'the error in words';

        alter table core.papers
            add column fulltext_status text
                check (fulltext_status in ('fetched', 'not_modified', 'not_found', 'too_large', 'bad_content', 'failed', 'no_url')),
            add column fulltext_fetched_at timestamptz,
            add column fulltext_checked_at timestamptz,
            add column fulltext_sha256 text,
            add column fulltext_etag text,
            add column fulltext_last_modified text,
            add column fulltext_error text,
            add column parsed_reference_count integer,
            add column fulltext_word_count integer;
        comment on column core.papers.fulltext_status is 'last fetch: fetched, not_modified, not_found, too_large, bad_content, failed, or no_url; null = never tried';
        comment on column core.papers.fulltext_fetched_at is 'when the full text in use was fetched (or confirmed unchanged by a 304)';
        comment on column core.papers.fulltext_checked_at is 'when the full text was last requested, successfully or not';
        comment on column core.papers.fulltext_sha256 is 'sha256 of the full text in use (raw store key); kept from an earlier fetch when the last one failed';
        comment on column core.papers.fulltext_etag is 'ETag of the full text, sent back as If-None-Match';
        comment on column core.papers.fulltext_last_modified is 'Last-Modified of the full text, sent back as If-Modified-Since';
        comment on column core.papers.fulltext_error is 'why the last fetch failed';
        comment on column core.papers.parsed_reference_count is 'references parsed from the full text (compare stated_reference_count)';
        comment on column core.papers.fulltext_word_count is 'words in the full text';
        create index on core.papers (fulltext_status);
        """
    )
    op.execute(
        f"""
        create table core.sections (
            paper_id text not null references core.papers (paper_id) on delete cascade,
            ordinal integer not null check (ordinal >= 0),
            heading text not null,
            level integer not null check (level between 0 and 6),
            heading_path text[] not null,
            text text not null,
            word_count integer not null check (word_count >= 0),
            {LINEAGE},
            primary key (paper_id, ordinal)
        );
        comment on table core.sections is 'sections of each paper''s full text, in order';
        comment on column core.sections.ordinal is '0-based position in the document';
        comment on column core.sections.heading is 'the section heading ('''' for text before the first heading)';
        comment on column core.sections.level is 'heading level: 2 for ##, 3 for ###, ...; 0 before any heading';
        comment on column core.sections.heading_path is 'headings from the top down to this section';
        comment on column core.sections.text is 'plain text of the section body';
        comment on column core.sections.word_count is 'words in text';
        comment on column core.sections.source_sha256 is 'sha256 of the full text these rows were parsed from';
        comment on column core.sections.run_id is 'ops.runs row of the flow run that last wrote this row';

        create table core.paper_references (
            paper_id text not null references core.papers (paper_id) on delete cascade,
            ordinal integer not null check (ordinal >= 1),
            citation text not null,
            doi text,
            pmid text,
            pmcid text,
            url text,
            year integer,
            {LINEAGE},
            primary key (paper_id, ordinal)
        );
        create index on core.paper_references (doi);
        comment on table core.paper_references is 'reference list of each paper''s full text';
        comment on column core.paper_references.ordinal is '1-based position in the reference list';
        comment on column core.paper_references.citation is 'the citation as written';
        comment on column core.paper_references.doi is 'DOI found in the citation';
        comment on column core.paper_references.pmid is 'PubMed id found in the citation';
        comment on column core.paper_references.pmcid is 'PubMed Central id found in the citation';
        comment on column core.paper_references.url is 'first URL in the citation';
        comment on column core.paper_references.year is 'publication year found in the citation';
        comment on column core.paper_references.source_sha256 is 'sha256 of the full text these rows were parsed from';
        comment on column core.paper_references.run_id is 'ops.runs row of the flow run that last wrote this row';

        create table core.captions (
            paper_id text not null references core.papers (paper_id) on delete cascade,
            ordinal integer not null check (ordinal >= 1),
            kind text not null check (kind in ('figure', 'table')),
            label text not null,
            caption text not null,
            section_ordinal integer not null,
            {LINEAGE},
            primary key (paper_id, ordinal)
        );
        comment on table core.captions is 'figure and table captions marked in the full text';
        comment on column core.captions.kind is 'figure or table';
        comment on column core.captions.label is 'the label as written, e.g. Figure 1';
        comment on column core.captions.caption is 'the caption text';
        comment on column core.captions.section_ordinal is 'the section it appears in (core.sections.ordinal)';
        comment on column core.captions.source_sha256 is 'sha256 of the full text these rows were parsed from';
        comment on column core.captions.run_id is 'ops.runs row of the flow run that last wrote this row';

        comment on column raw.fetches.fetch_id is 'surrogate key';
        comment on column raw.fetches.run_id is 'the run that made the attempt';
        comment on column raw.fetches.paper_id is 'the paper whose full text was requested';
        comment on column raw.fetches.started_at is 'when the attempt started';
        comment on column core.sections.paper_id is 'the paper (core.papers)';
        comment on column core.paper_references.paper_id is 'the paper (core.papers)';
        comment on column core.captions.paper_id is 'the paper (core.papers)';
        comment on column core.captions.ordinal is '1-based position among the paper''s captions';

        create view analytics.papers_without_fulltext as
        select paper_id, title, fulltext_url, fulltext_status, fulltext_error,
               fulltext_checked_at, fulltext_sha256 is not null as has_older_fulltext
        from core.papers
        where fulltext_status is distinct from 'fetched' and fulltext_status is distinct from 'not_modified';
        comment on view analytics.papers_without_fulltext is 'papers whose last full-text fetch did not succeed, and why';

        create view analytics.reference_counts as
        select paper_id, title, stated_reference_count, parsed_reference_count,
               parsed_reference_count - stated_reference_count as difference
        from core.papers;
        comment on view analytics.reference_counts is 'references the summary states against references parsed from the full text';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop view if exists analytics.reference_counts;
        drop view if exists analytics.papers_without_fulltext;
        drop table if exists core.captions;
        drop table if exists core.paper_references;
        drop table if exists core.sections;
        alter table core.papers
            drop column fulltext_status, drop column fulltext_fetched_at,
            drop column fulltext_checked_at, drop column fulltext_sha256,
            drop column fulltext_etag, drop column fulltext_last_modified,
            drop column fulltext_error, drop column parsed_reference_count,
            drop column fulltext_word_count;
        drop schema if exists raw cascade;
        """
    )
