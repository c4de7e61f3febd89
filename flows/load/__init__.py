"""The load stage: a batch's records -> PostgreSQL, one transaction per batch.

db.py        which PostgreSQL: DATABASE_URL or the embedded server; masked URLs, psql
migrate.py   Alembic upgrade/downgrade of schemas/migrations
copy.py      COPY and staging-table helpers, driven by flows/tables.py
papers.py    core.papers with authors and key findings; full-text states of the rest
entities.py  entities, the names papers give them, aliases and preferred names
fulltext.py  sections, references, captions and mentions: COPY straight in
runlog.py    ops.runs, raw.fetches, ops.quarantine and ops.dq_results
loader.py    PostgresLoader: the one door to PostgreSQL the flow is handed
"""
