"""an analyst-grade database: a read-only role, full-text search, names to identifiers,
one cause per fetch error, and what each run changed

- tomeflow_reader: a group role with SELECT on analytics, core, ops and raw (and on what
  later migrations add, through default privileges) and nothing else; `tomeflow db
  grant-reader NAME` makes logins in it. Roles belong to the server, not the database: the
  role is made once and kept by a downgrade, which only takes its grants back.
- core.sections.search: a stored tsvector of heading and text, with a GIN index, and
  analytics.search_sections(query) returning paper, heading, rank and a highlighted snippet.
- analytics.entity_names: every name and alias any paper uses -> CURIE, type, preferred
  name, papers (join it to analytics.gene_disease_cooccurrence, keyed by CURIE, to start
  from any alias).
- raw.fetches.error_cause: dns, connect, timeout, tls, http_status, too_large, bad_content,
  refused or other, whatever the error's class; the full-text views show it.
- a comment on every table, view and column (`tomeflow db dictionary` prints them).
- ops.run_changes: per run, the papers added, updated (which fields, entities, sections and
  references changed) and removed from the seeds; ops.runs.metrics: the figures the drift
  gate compares run to run; analytics.run_diff: the last run against the one before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMAS = ("analytics", "core", "ops", "raw")

ERROR_CAUSE = """
case
  when error_class is null then null
  when error_class in ('NameResolutionError') then 'dns'
  when error_class in ('ConnectionError', 'NewConnectionError', 'TruncatedBody',
                       'ChunkedEncodingError', 'ProtocolError') then 'connect'
  when error_class in ('ConnectTimeout', 'ReadTimeout', 'Timeout', 'TransferTimeout',
                       'PaperTimeout') then 'timeout'
  when error_class in ('SSLError') then 'tls'
  when error_class in ('NotFound', 'ServerError', 'RateLimited', 'ClientError',
                       'UnexpectedStatus') then 'http_status'
  when error_class in ('BodyTooLarge') then 'too_large'
  when error_class in ('HtmlBody', 'UnacceptableContentType', 'NotUtf8',
                       'ContentDecodingError') then 'bad_content'
  when error_class in ('PrivateAddress', 'HostNotAllowed', 'SchemeNotAllowed',
                       'RedirectNotAllowed', 'InvalidURL', 'TooManyRedirects') then 'refused'
  else 'other'
end
"""


def upgrade() -> None:
    _reader_role()
    _search()
    _names()
    op.execute(
        f"""
        alter table raw.fetches add column error_cause text
            check (error_cause in ('dns', 'connect', 'timeout', 'tls', 'http_status',
                                   'too_large', 'bad_content', 'refused', 'other'));
        update raw.fetches set error_cause = {ERROR_CAUSE};
        comment on column raw.fetches.error_cause is 'the cause of the failure, one per kind: dns, connect, timeout, tls, http_status, too_large, bad_content, refused (by the allowlist or the address guard) or other';
        comment on column raw.fetches.error_class is 'the error as tomeflow names it (finer than error_cause): NotFound, ReadTimeout, BodyTooLarge, HtmlBody, PrivateAddress, ...';
        """
    )
    _changes()
    _cause_in_views()
    _comments()


def _cause_in_views() -> None:
    op.execute(
        """
        create or replace view analytics.fulltext_checks as
        select distinct on (paper_id) paper_id, started_at as last_checked_at,
               status_code as last_status_code, error_class as last_error_class,
               error_message as last_error_message,
               count(*) over (partition by paper_id) as attempts,
               error_cause as last_error_cause
        from raw.fetches
        order by paper_id, started_at desc, fetch_id desc;
        create or replace view analytics.papers_without_fulltext as
        select p.paper_id, p.title, p.fulltext_url, p.fulltext_status, p.fulltext_error,
               c.last_checked_at as fulltext_checked_at,
               p.fulltext_sha256 is not null as has_older_fulltext,
               c.last_error_cause as fulltext_cause
        from core.papers p
        left join analytics.fulltext_checks c using (paper_id)
        where p.fulltext_status is distinct from 'fetched'
          and p.fulltext_status is distinct from 'not_modified';
        """
    )


# the columns earlier migrations left without a comment
COMMENTS = {
    "analytics.entity_evidence": {
        "paper_id": "the paper",
        "curie": "the entity the paper lists",
        "entity_type": "gene, disease, species, chemical, variant, cell line or other",
        "preferred_name": "the entity's display name",
        "has_fulltext": "whether the paper's full text is loaded (core.sections)",
        "found_in_text": "whether the full text mentions the entity; null without a full text",
        "mentions": "mentions of the entity's names in the full text",
        "sections_mentioning": "full-text sections that mention it",
        "first_section": "ordinal of the first section that mentions it",
    },
    "analytics.entity_name_collisions": {
        "name": "a name in lower case that stands for more than one CURIE",
        "curie_count": "how many CURIEs papers give this name",
        "curies": "those CURIEs",
        "entity_types": "their entity types",
        "paper_uses": "listings that use the name, over all its CURIEs",
    },
    "analytics.entity_papers": {
        "curie": "the entity",
        "entity": "its preferred name",
        "entity_type": "gene, disease, species, chemical, variant, cell line or other",
        "papers": "papers listing it",
        "total_mentions": "its mentions in those papers' full texts",
    },
    "analytics.fulltext_checks": {
        "paper_id": "the paper",
        "last_checked_at": "when its full text was last requested",
        "last_status_code": "the HTTP status of the last attempt (null: no response)",
        "last_error_class": "the last attempt's error, as tomeflow names it (null: none)",
        "last_error_message": "the last attempt's error message",
        "attempts": "attempts raw.fetches holds for the paper (retries and redirects each count)",
        "last_error_cause": "the last error's cause: dns, connect, timeout, tls, http_status, too_large, bad_content, refused or other",
    },
    "analytics.gene_disease_cooccurrence": {
        "gene_curie": "the gene (core.entities)",
        "gene": "the gene's preferred name",
        "disease_curie": "the disease (core.entities)",
        "disease": "the disease's preferred name",
        "papers": "papers listing both",
        "gene_mentions": "the gene's mentions in those papers' full texts",
        "disease_mentions": "the disease's mentions in those papers' full texts",
        "paper_ids": "those papers",
    },
    "analytics.paper_entities": {
        "paper_id": "the paper",
        "paper_title": "its title",
        "curie": "an entity it lists",
        "entity": "the entity's preferred name",
        "entity_type": "gene, disease, species, chemical, variant, cell line or other",
        "linked": "whether the page lists it under Linked entities (else only under Full-text entities)",
        "mentions": "mentions of the entity in the paper's full text",
    },
    "analytics.paper_evidence": {
        "paper_id": "a paper with a full text",
        "title": "its title",
        "listed_entities": "entities it lists",
        "found_in_text": "of those, entities its full text mentions",
        "share_found": "found_in_text / listed_entities",
    },
    "analytics.papers_without_fulltext": {
        "paper_id": "the paper",
        "title": "its title",
        "fulltext_url": "where its full text should be",
        "fulltext_status": "the last fetch: not_found, too_large, bad_content, failed or no_url (null: never tried)",
        "fulltext_error": "the last fetch's error message",
        "fulltext_checked_at": "when the full text was last requested",
        "has_older_fulltext": "whether a full text fetched before is still loaded",
        "fulltext_cause": "the last error's cause: dns, connect, timeout, tls, http_status, too_large, bad_content, refused or other",
    },
    "analytics.reference_counts": {
        "paper_id": "the paper",
        "title": "its title",
        "stated_reference_count": "the reference count its page states",
        "parsed_reference_count": "references parsed from its full text",
        "difference": "parsed minus stated",
    },
}


def _comments() -> None:
    for relation, columns in COMMENTS.items():
        for column, text in columns.items():
            quoted = text.replace("'", "''")
            op.execute(f"comment on column {relation}.{column} is '{quoted}'")


def _reader_role() -> None:
    op.execute(
        """
        do $$ begin
            if not exists (select 1 from pg_roles where rolname = 'tomeflow_reader') then
                create role tomeflow_reader nologin;
            end if;
        end $$;
        comment on role tomeflow_reader is 'tomeflow: read-only access to analytics, core, ops and raw';
        alter role tomeflow_reader set search_path = analytics, core;
        """
    )
    for schema in SCHEMAS:
        op.execute(
            f"""
            grant usage on schema {schema} to tomeflow_reader;
            grant select on all tables in schema {schema} to tomeflow_reader;
            alter default privileges in schema {schema} grant select on tables to tomeflow_reader;
            """
        )


def _search() -> None:
    op.execute(
        """
        alter table core.sections add column search tsvector
            generated always as (
                setweight(to_tsvector('english', coalesce(heading, '')), 'A')
                || setweight(to_tsvector('english', text), 'B')
            ) stored;
        create index sections_search_idx on core.sections using gin (search);
        comment on column core.sections.search is 'heading (weight A) and text (weight B) as an English tsvector, for full-text search (GIN index)';

        create function analytics.search_sections(query text)
        returns table (paper_id text, title text, ordinal integer, heading text, rank real,
                       snippet text)
        language sql stable as $$
            select s.paper_id, p.title, s.ordinal, s.heading,
                   ts_rank(s.search, q) as rank,
                   ts_headline('english', s.text, q,
                               'StartSel=<<, StopSel=>>, MaxWords=35, MinWords=15') as snippet
            from core.sections s
            join core.papers p using (paper_id),
                 websearch_to_tsquery('english', query) q
            where s.search @@ q
            order by rank desc, s.paper_id, s.ordinal
        $$;
        comment on function analytics.search_sections(text) is 'sections matching a web-style query (words, "phrases", -not, or), best first: paper, title, section, rank and a snippet with matches between << and >>';
        grant execute on function analytics.search_sections(text) to tomeflow_reader;
        """
    )


def _names() -> None:
    op.execute(
        """
        create view analytics.entity_names as
        select a.alias as name, lower(a.alias) as name_folded, a.kind, e.curie,
               e.entity_type, e.preferred_name, a.paper_count as papers_using_name,
               (select count(distinct pe.paper_id) from core.paper_entities pe
                 where pe.curie = e.curie) as papers
        from core.entity_aliases a join core.entities e using (curie);
        comment on view analytics.entity_names is 'every name and alias any paper gives an entity, to its CURIE: find an entity by any of its names (where name_folded = lower(...))';
        comment on column analytics.entity_names.name is 'a name or alias as papers write it';
        comment on column analytics.entity_names.name_folded is 'the name in lower case, for case-insensitive lookups';
        comment on column analytics.entity_names.kind is 'name (as listed), full_name (gene), common_name (species) or alias (after aka)';
        comment on column analytics.entity_names.curie is 'the entity the name stands for';
        comment on column analytics.entity_names.entity_type is 'gene, disease, species, chemical, variant, cell line or other';
        comment on column analytics.entity_names.preferred_name is 'the entity''s display name (core.entities.preferred_name)';
        comment on column analytics.entity_names.papers_using_name is 'papers that give the entity this name';
        comment on column analytics.entity_names.papers is 'papers that list the entity, under any name';

        """
    )


def _changes() -> None:
    op.execute(
        """
        create table ops.run_changes (
            change_id bigint generated always as identity primary key,
            run_id uuid not null references ops.runs (run_id),
            paper_id text not null,
            change text not null check (change in ('added', 'updated', 'removed')),
            fields text[] not null default '{}',
            entities_added text[] not null default '{}',
            entities_removed text[] not null default '{}',
            sections_before integer,
            sections_after integer,
            references_before integer,
            references_after integer,
            fulltext_before text,
            fulltext_after text
        );
        create index on ops.run_changes (run_id);
        create index on ops.run_changes (paper_id);
        comment on table ops.run_changes is 'what each run changed: one row per paper added, updated or removed from the seeds';
        comment on column ops.run_changes.change_id is 'surrogate key';
        comment on column ops.run_changes.run_id is 'the run (ops.runs)';
        comment on column ops.run_changes.paper_id is 'the paper';
        comment on column ops.run_changes.change is 'added (new paper), updated (its rows were replaced) or removed (its seed is gone; its rows stay)';
        comment on column ops.run_changes.fields is 'core.papers columns whose value changed';
        comment on column ops.run_changes.entities_added is 'CURIEs the paper lists now and did not before';
        comment on column ops.run_changes.entities_removed is 'CURIEs the paper listed before and does not now';
        comment on column ops.run_changes.sections_before is 'full-text sections before the run';
        comment on column ops.run_changes.sections_after is 'full-text sections after the run';
        comment on column ops.run_changes.references_before is 'parsed references before the run';
        comment on column ops.run_changes.references_after is 'parsed references after the run';
        comment on column ops.run_changes.fulltext_before is 'full-text status before the run';
        comment on column ops.run_changes.fulltext_after is 'full-text status after the run';

        alter table ops.runs add column metrics jsonb not null default '{}'::jsonb;
        comment on column ops.runs.metrics is 'ops.current_metrics at the end of the run: the figures the drift gate compares with the last completed run';

        create view ops.current_metrics as
        with current_papers as (
            select p.paper_id, p.fulltext_status from core.papers p
            where not exists (  -- the latest change of a paper says its seed is gone
                select 1 from ops.run_changes c where c.paper_id = p.paper_id
                and c.change = 'removed' and c.change_id = (
                    select max(x.change_id) from ops.run_changes x
                    where x.paper_id = p.paper_id))
        )
        select (select count(*) from current_papers) as papers,
               (select count(*) from current_papers
                 where fulltext_status in ('fetched', 'not_modified')) as papers_with_fulltext,
               (select count(distinct e.curie) from core.paper_entities e
                 join current_papers using (paper_id)) as entities;
        comment on view ops.current_metrics is 'the figures the drift gate watches, now: papers whose seeds are still there, those of them whose latest full-text fetch succeeded (an older body kept after a failed fetch does not count), and the distinct entities they list';
        comment on column ops.current_metrics.papers is 'papers loaded and not removed from the seeds';
        comment on column ops.current_metrics.papers_with_fulltext is 'of those, papers whose latest fetch got the full text (fetched or not_modified)';
        comment on column ops.current_metrics.entities is 'distinct CURIEs those papers list';

        create view ops.run_change_details as
        select c.run_id, c.paper_id, c.change, c.sections_before, c.sections_after,
               c.fields
               || array(select 'entity added: ' || e from unnest(c.entities_added) e)
               || array(select 'entity removed: ' || e from unnest(c.entities_removed) e)
               || case when c.references_before is distinct from c.references_after
                            and c.change = 'updated'
                       then array['references: ' || coalesce(c.references_before, 0)
                                  || ' -> ' || coalesce(c.references_after, 0)]
                       else array[]::text[] end
               || case when c.sections_before is distinct from c.sections_after
                            and c.change = 'updated'
                       then array['sections: ' || coalesce(c.sections_before, 0)
                                  || ' -> ' || coalesce(c.sections_after, 0)]
                       else array[]::text[] end
               || case when c.fulltext_before is distinct from c.fulltext_after
                            and c.change = 'updated'
                       then array['full text: ' || coalesce(c.fulltext_before, 'none')
                                  || ' -> ' || coalesce(c.fulltext_after, 'none')]
                       else array[]::text[] end as details
        from ops.run_changes c;
        comment on view ops.run_change_details is 'ops.run_changes with what changed spelled out: the fields, then entities added and removed, references, sections and full-text status before -> after';
        comment on column ops.run_change_details.run_id is 'the run (ops.runs)';
        comment on column ops.run_change_details.paper_id is 'the paper';
        comment on column ops.run_change_details.change is 'added, updated or removed';
        comment on column ops.run_change_details.sections_before is 'full-text sections before the run';
        comment on column ops.run_change_details.sections_after is 'full-text sections after the run';
        comment on column ops.run_change_details.details is 'what changed, one phrase each';

        create view analytics.run_diff as
        with last_two as (
            select run_id, row_counts,
                   row_number() over (order by started_at desc) as n
            from ops.runs where status in ('completed', 'failed')
        ), tables as (
            select coalesce(l.key, p.key) as name, l.value::bigint as now_rows,
                   p.value::bigint as before_rows
            from (select key, value from last_two, jsonb_each_text(row_counts) where n = 1) l
            full join (select key, value from last_two, jsonb_each_text(row_counts) where n = 2) p
              using (key)
        )
        select 'table' as kind, t.name as item, null::text as change,
               t.before_rows, t.now_rows, t.now_rows - t.before_rows as difference,
               null::text[] as details
        from tables t
        union all
        select 'paper', d.paper_id, d.change, d.sections_before, d.sections_after,
               null::bigint, d.details
        from ops.run_change_details d join last_two r on r.run_id = d.run_id and r.n = 1;
        comment on view analytics.run_diff is 'the last run against the one before: rows per table before and now, and every paper it added, updated or found removed, with what changed';
        comment on column analytics.run_diff.kind is 'table (a row count) or paper (a change)';
        comment on column analytics.run_diff.item is 'the table, or the paper id';
        comment on column analytics.run_diff.change is 'for papers: added, updated or removed';
        comment on column analytics.run_diff.before_rows is 'tables: rows after the run before; papers: sections before';
        comment on column analytics.run_diff.now_rows is 'tables: rows after the last run; papers: sections after';
        comment on column analytics.run_diff.difference is 'tables: rows now minus rows before';
        comment on column analytics.run_diff.details is 'papers: the fields, entities and full-text status that changed';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop view analytics.papers_without_fulltext;
        drop view analytics.fulltext_checks;
        create view analytics.fulltext_checks as
        select distinct on (paper_id) paper_id, started_at as last_checked_at,
               status_code as last_status_code, error_class as last_error_class,
               error_message as last_error_message,
               count(*) over (partition by paper_id) as attempts
        from raw.fetches
        order by paper_id, started_at desc, fetch_id desc;
        comment on view analytics.fulltext_checks is 'per paper: when its full text was last requested, what the last attempt came to, and how many attempts raw.fetches holds';
        create view analytics.papers_without_fulltext as
        select p.paper_id, p.title, p.fulltext_url, p.fulltext_status, p.fulltext_error,
               c.last_checked_at as fulltext_checked_at, p.fulltext_sha256 is not null as has_older_fulltext
        from core.papers p
        left join analytics.fulltext_checks c using (paper_id)
        where p.fulltext_status is distinct from 'fetched' and p.fulltext_status is distinct from 'not_modified';
        comment on view analytics.papers_without_fulltext is 'papers whose last full-text fetch did not succeed, and why';
        drop view if exists analytics.run_diff;
        drop view if exists ops.run_change_details;
        drop view if exists ops.current_metrics;
        alter table ops.runs drop column if exists metrics;
        drop table if exists ops.run_changes;
        alter table raw.fetches drop column if exists error_cause;
        drop view if exists analytics.entity_names;
        drop function if exists analytics.search_sections(text);
        drop index if exists core.sections_search_idx;
        alter table core.sections drop column if exists search;
        """
    )
    for schema in SCHEMAS:
        op.execute(
            f"""
            alter default privileges in schema {schema} revoke select on tables from tomeflow_reader;
            revoke select on all tables in schema {schema} from tomeflow_reader;
            revoke usage on schema {schema} from tomeflow_reader;
            """
        )
