"""core.sections.search: computed by one function, by the load before it takes the load lock

The search tsvector was a generated column, computed as each row entered core.sections:
inside the batch's transaction after it took the load lock, so that one batch's parsing
(most of PostgreSQL's work in a load) kept every other batch waiting. The expression is now
the function core.section_search(heading, text); a load computes it into its staging table
before it takes the lock and writes the values, and a trigger computes it for any row that
arrives without one (or whose heading or text changes without it), so the column always
holds what the generated column held.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create function core.section_search(heading text, body text) returns tsvector
        language sql immutable parallel safe as $$
            select setweight(to_tsvector('english', coalesce(heading, '')), 'A')
                   || setweight(to_tsvector('english', body), 'B')
        $$;
        comment on function core.section_search(text, text) is 'a section''s search tsvector: heading (weight A) and text (weight B), English';
        alter table core.sections alter column search drop expression;
        comment on column core.sections.search is 'heading (weight A) and text (weight B) as an English tsvector (core.section_search), for full-text search (GIN index)';
        create function core.sections_fill_search() returns trigger
        language plpgsql as $$
        begin
            if new.search is null or (tg_op = 'UPDATE'
                    and new.search is not distinct from old.search
                    and (new.heading, new.text) is distinct from (old.heading, old.text)) then
                new.search := core.section_search(new.heading, new.text);
            end if;
            return new;
        end $$;
        comment on function core.sections_fill_search() is 'fills core.sections.search for a row written without it';
        create trigger sections_search before insert or update on core.sections
            for each row execute function core.sections_fill_search();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop trigger sections_search on core.sections;
        drop function core.sections_fill_search();
        drop index core.sections_search_idx;
        alter table core.sections drop column search;
        alter table core.sections add column search tsvector
            generated always as (
                setweight(to_tsvector('english', coalesce(heading, '')), 'A')
                || setweight(to_tsvector('english', text), 'B')
            ) stored;
        create index sections_search_idx on core.sections using gin (search);
        comment on column core.sections.search is 'heading (weight A) and text (weight B) as an English tsvector, for full-text search (GIN index)';
        drop function core.section_search(text, text);
        """
    )
