"""data-quality results

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create table ops.dq_results (
            result_id bigint generated always as identity primary key,
            run_id uuid not null references ops.runs (run_id),
            batch integer not null,
            checkpoint text not null check (checkpoint in ('before_load', 'after_load')),
            suite text not null,
            expectation text not null,
            column_name text,
            success boolean not null,
            observed_value jsonb,
            unexpected_count bigint,
            unexpected_percent double precision,
            element_count bigint,
            created_at timestamptz not null default now()
        );
        create index on ops.dq_results (run_id);
        comment on table ops.dq_results is 'one row per Great Expectations expectation evaluated in a run, per batch and checkpoint';
        comment on column ops.dq_results.result_id is 'surrogate key';
        comment on column ops.dq_results.run_id is 'the run (ops.runs)';
        comment on column ops.dq_results.batch is '1-based batch number within the run';
        comment on column ops.dq_results.checkpoint is 'before_load (on the batch''s records) or after_load (on the PostgreSQL tables)';
        comment on column ops.dq_results.suite is 'expectation suite, one per record kind (schemas/expectations/<suite>.json)';
        comment on column ops.dq_results.expectation is 'expectation type, e.g. expect_column_values_to_match_regex';
        comment on column ops.dq_results.column_name is 'the column checked, when there is one';
        comment on column ops.dq_results.success is 'whether the expectation held';
        comment on column ops.dq_results.observed_value is 'what Great Expectations observed (e.g. a row count, a min, a max)';
        comment on column ops.dq_results.unexpected_count is 'rows that broke the expectation';
        comment on column ops.dq_results.unexpected_percent is 'share of rows that broke it, in percent';
        comment on column ops.dq_results.element_count is 'rows evaluated';
        comment on column ops.dq_results.created_at is 'when it was evaluated';

        alter table ops.runs add column dq_failed_expectations integer not null default 0;
        comment on column ops.runs.dq_failed_expectations is 'expectations that failed in the run (see ops.dq_results)';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        alter table ops.runs drop column if exists dq_failed_expectations;
        drop table if exists ops.dq_results;
        """
    )
