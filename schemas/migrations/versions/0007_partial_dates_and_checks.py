"""partial publication dates; when a full text was last checked is read from raw.fetches

A page that gives only a year (2025) or a month (2025-11) was loaded as the first of January
or of the month with no sign that it was partial: published_on_precision says which.

core.papers.fulltext_checked_at changed on every run that asked for a full text, so a paper
whose fetch failed again the same way was rewritten while the run called it unchanged. The
time of the last request is in raw.fetches already: the column goes, and the views read it
from there (analytics.fulltext_checks, analytics.papers_without_fulltext).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PAPERS_WITHOUT_FULLTEXT = """
create view analytics.papers_without_fulltext as
select p.paper_id, p.title, p.fulltext_url, p.fulltext_status, p.fulltext_error,
       c.last_checked_at as fulltext_checked_at, p.fulltext_sha256 is not null as has_older_fulltext
from core.papers p
left join analytics.fulltext_checks c using (paper_id)
where p.fulltext_status is distinct from 'fetched' and p.fulltext_status is distinct from 'not_modified';
comment on view analytics.papers_without_fulltext is 'papers whose last full-text fetch did not succeed, and why';
"""


def upgrade() -> None:
    op.execute(
        """
        alter table core.papers add column published_on_precision text
            check (published_on_precision in ('day', 'month', 'year'));
        update core.papers set published_on_precision = 'day' where published_on is not null;
        comment on column core.papers.published_on_precision is 'how much of the date the page gave: day, month or year (a missing month or day reads as 1)';
        comment on column core.papers.published_on is 'publication date; published_on_precision says whether the page gave its day, month or only its year';

        drop view analytics.papers_without_fulltext;
        alter table core.papers drop column fulltext_checked_at;

        create view analytics.fulltext_checks as
        select distinct on (paper_id) paper_id, started_at as last_checked_at,
               status_code as last_status_code, error_class as last_error_class,
               error_message as last_error_message,
               count(*) over (partition by paper_id) as attempts
        from raw.fetches
        order by paper_id, started_at desc, fetch_id desc;
        comment on view analytics.fulltext_checks is 'per paper: when its full text was last requested, what the last attempt came to, and how many attempts raw.fetches holds';
        """
    )
    op.execute(PAPERS_WITHOUT_FULLTEXT)


def downgrade() -> None:
    op.execute(
        """
        drop view analytics.papers_without_fulltext;
        alter table core.papers add column fulltext_checked_at timestamptz;
        update core.papers p set fulltext_checked_at = c.last_checked_at
        from analytics.fulltext_checks c where c.paper_id = p.paper_id;
        comment on column core.papers.fulltext_checked_at is 'when the full text was last requested, successfully or not';
        drop view analytics.fulltext_checks;
        alter table core.papers drop column published_on_precision;
        create view analytics.papers_without_fulltext as
        select paper_id, title, fulltext_url, fulltext_status, fulltext_error,
               fulltext_checked_at, fulltext_sha256 is not null as has_older_fulltext
        from core.papers
        where fulltext_status is distinct from 'fetched' and fulltext_status is distinct from 'not_modified';
        comment on view analytics.papers_without_fulltext is 'papers whose last full-text fetch did not succeed, and why';
        """
    )
