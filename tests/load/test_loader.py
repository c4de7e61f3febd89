"""The loader: one transaction per batch, idempotent, safe to run concurrently (flows/load.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from flows.fetch.rawstore import RawStore
from flows.load.loader import PostgresLoader
from flows.records import FulltextState, PaperLoad
from flows.seeds import parse_summary
from tests.helpers import CORE_TABLES, REAL_FULLTEXT, REAL_SEED, query, snapshot
from tests.helpers import assemble_from_store as assemble_paper

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


@pytest.fixture
def loads(tmp_path: Path) -> list[PaperLoad]:
    """The real seed with its full text, and two copies under other ids."""
    store = RawStore(tmp_path / "raw")
    sha = store.put(REAL_FULLTEXT.read_bytes())
    state = FulltextState("fetched", sha, '"v1"', None, NOW, NOW, None, True)
    made = []
    for paper_id in ("PMC12809390", "PMC1", "PMC2"):
        text = REAL_SEED.read_bytes().replace(b"PMC12809390", paper_id.encode())
        load, _ = assemble_paper(parse_summary(text, f"{paper_id}.md"), state, None, store)
        made.append(load)
    return made


def start(loader: PostgresLoader) -> uuid.UUID:
    run_id = uuid.uuid4()
    loader.start_run(run_id, "test", "seeds")
    return run_id


def test_two_runs_loading_the_same_batch_at_once_write_it_once(
    db_url: str, loads: list[PaperLoad]
) -> None:
    loader = PostgresLoader(db_url)
    runs = [start(loader), start(loader)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda run: loader.load_batch(run, loads), runs))
    # the advisory lock serialises the write: one run loads, the other finds it unchanged
    assert sorted((len(r.new), len(r.unchanged)) for r in results) == [(0, 3), (3, 0)]
    alone = snapshot(db_url, CORE_TABLES, exclude=("run_id", "loaded_at"))
    assert query(db_url, "select count(*) from core.papers") == [(3,)]
    assert query(db_url, "select count(distinct run_id) from core.sections") == [(1,)]
    assert alone["core.entity_mentions"] and alone["core.sections"]


def test_a_load_says_how_long_it_waited_for_another_load_to_commit(
    db_url: str, loads: list[PaperLoad]
) -> None:
    from flows.load.loader import LOAD_LOCK

    loader = PostgresLoader(db_url)
    run_id = start(loader)
    loader.load_batch(run_id, loads[:1])
    holding = threading.Event()

    def another_load() -> None:  # holds the load lock for half a second, as a load would
        with psycopg.connect(db_url) as conn, conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (LOAD_LOCK,))
            holding.set()
            time.sleep(0.5)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(another_load)
        assert holding.wait(10)
        result = loader.load_batch(run_id, loads[1:])
    assert result.lock_wait_seconds >= 0.4  # its wait, kept apart from its own writing
    assert len(result.new) == 2


def test_a_load_stages_its_sections_before_it_waits_for_the_lock(
    db_url: str, loads: list[PaperLoad]
) -> None:
    import psycopg

    from flows.load.loader import LOAD_LOCK

    loader = PostgresLoader(db_url)
    run_id = start(loader)
    waiting_for_it = """select a.backend_xid is not null,
                               (select count(*) from pg_locks r where r.pid = l.pid
                                and r.locktype = 'relation' and r.mode = 'AccessExclusiveLock')
                        from pg_locks l join pg_stat_activity a using (pid)
                        where l.locktype = 'advisory' and l.objid = %s and not l.granted
                          and a.datname = current_database()"""
    # (the pool outermost: it waits for the load only once the lock is let go)
    with (
        ThreadPoolExecutor(1) as pool,
        psycopg.connect(db_url, autocommit=True) as watcher,
        psycopg.connect(db_url) as other,
    ):
        with other.transaction():  # another load holds the lock meanwhile
            other.execute("select pg_advisory_xact_lock(%s)", (LOAD_LOCK,))
            loading = pool.submit(loader.load_batch, run_id, loads)
            waiting = None
            for _ in range(400):
                waiting = watcher.execute(waiting_for_it, (LOAD_LOCK,)).fetchone()
                if waiting is not None or loading.done():
                    break
                time.sleep(0.05)
            assert waiting is not None, "the load never waited for the lock"
            # the waiting load has written already: it created (and holds) its staging
            # tables, the sections with their parsed search among them
            wrote, created = waiting
            assert wrote and created >= 1
            assert not query(db_url, "select 1 from core.sections")
        result = loading.result(timeout=60)
    assert result.rows_written["core.sections"] > 0
    assert result.lock_wait_seconds > 0


def test_every_section_s_search_is_its_heading_and_text_parsed(
    db_url: str, loads: list[PaperLoad]
) -> None:
    loader = PostgresLoader(db_url)
    loader.load_batch(start(loader), loads)
    same = """select count(*), count(*) filter (where search = setweight(
                  to_tsvector('english', coalesce(heading, '')), 'A')
                  || setweight(to_tsvector('english', text), 'B')) from core.sections"""
    [(sections, parsed)] = query(db_url, same)
    assert sections > 0 and parsed == sections


def test_a_load_is_all_or_nothing(db_url: str, loads: list[PaperLoad]) -> None:
    loader = PostgresLoader(db_url)
    bad = replace(loads[2], paper=replace(loads[2].paper, title=""))  # breaks a check constraint
    with pytest.raises(Exception, match="papers_title_check"):
        loader.load_batch(start(loader), [*loads[:2], bad])
    for table in CORE_TABLES:
        assert query(db_url, f"select count(*) from {table}") == [(0,)], table


def test_an_unchanged_paper_only_gets_its_new_full_text_state(
    db_url: str, loads: list[PaperLoad]
) -> None:
    loader = PostgresLoader(db_url)
    loader.load_batch(start(loader), loads)
    before = snapshot(db_url, CORE_TABLES[1:])
    later = NOW + dt.timedelta(days=1)
    state = replace(
        loads[0].fulltext_state, status="not_modified", fetched_at=later, checked_at=later
    )
    run = start(loader)
    result = loader.load_batch(run, [replace(loads[0], fulltext_state=state, content=None)])
    assert (result.unchanged, result.rows_written["core.papers"]) == (("PMC12809390",), 1)
    assert query(
        db_url,
        "select fulltext_status, fulltext_fetched_at, run_id from core.papers where paper_id = 'PMC12809390'",
    ) == [("not_modified", later, run)]
    assert snapshot(db_url, CORE_TABLES[1:]) == before


def test_full_refresh_rewrites_identical_rows(db_url: str, loads: list[PaperLoad]) -> None:
    loader = PostgresLoader(db_url)
    loader.load_batch(start(loader), loads)
    before = snapshot(db_url, CORE_TABLES, exclude=("run_id", "loaded_at"))
    run = start(loader)
    result = loader.load_batch(run, loads, force=True)
    assert len(result.unchanged) == 3 and result.rows_written["core.sections"] > 0
    assert snapshot(db_url, CORE_TABLES, exclude=("run_id", "loaded_at")) == before
    assert query(db_url, "select distinct run_id from core.sections") == [(run,)]


def test_shared_rows_do_not_depend_on_batch_order_or_size(
    db_url: str, other_db_url: str, tmp_path: Path
) -> None:
    store = RawStore(tmp_path / "raw")
    sha = store.put(REAL_FULLTEXT.read_bytes())
    state = FulltextState("fetched", sha, None, None, NOW, NOW, None, True)
    papers = []
    for n, full_name in ((1, "insulin"), (2, "preproinsulin"), (3, "proinsulin")):
        seed = REAL_SEED.read_bytes().replace(b"PMC12809390", f"PMC{n}".encode())
        seed = seed.replace(b"INS (insulin)", f"INS ({full_name})".encode())
        seed = seed.replace(b"Enis Kostallari", f"Enis Kostallari, Author {n}".encode())
        load, _ = assemble_paper(parse_summary(seed, f"PMC{n}.md"), state, None, store)
        papers.append(load)
    first, second = PostgresLoader(db_url), PostgresLoader(other_db_url)
    run = start(first)
    for batch in ([papers[0], papers[1]], [papers[2]]):  # batches of two, in order
        first.load_batch(run, batch)
    run = start(second)
    for batch in ([papers[2]], [papers[1]], [papers[0]]):  # batches of one, backwards
        second.load_batch(run, batch)
    ignored = ("run_id", "loaded_at", "author_id")
    assert snapshot(db_url, CORE_TABLES, ignored) == snapshot(other_db_url, CORE_TABLES, ignored)
    # the paper with the highest id gives the entity its details, however the batches ran
    (gene,) = query(
        other_db_url,
        "select full_name, source_sha256 from core.entities where curie = 'NCBIGene:3630'",
    )
    assert gene == ("proinsulin", papers[2].paper.seed_sha256)
    authors = "select a.name, a.source_sha256 from core.authors a order by name"
    assert query(db_url, authors) == query(other_db_url, authors)


def test_row_counts_are_exact_below_the_limit_and_postgres_estimates_above_it(
    db_url: str, loads: list[PaperLoad]
) -> None:
    from flows.tables import TABLE_NAMES

    loader = PostgresLoader(db_url)
    first = start(loader)
    loader.load_batch(first, loads[:2])
    second = start(loader)
    loader.load_batch(second, loads[2:])

    def exact(run: uuid.UUID) -> tuple[dict[str, int], dict[str, int]]:
        totals, mine = {}, {}
        for table in TABLE_NAMES:
            [(totals[table], mine[table])] = query(
                db_url,
                f"select count(*), count(*) filter (where run_id = %s) from {table}",
                run,
            )
        return totals, mine

    # below the limit every table is counted
    rows = loader.row_counts(second, exact_below=1_000_000_000)
    assert (rows.totals, rows.of_run) == exact(second) and rows.estimated == frozenset()
    assert list(rows.totals) == list(TABLE_NAMES)
    # over it, a table's total is PostgreSQL's estimate: never analysed, the live rows its
    # statistics counted as the loads committed; the run's own rows are still counted
    # (an empty table has none; a table without an index led by run_id is read whole for its
    # run's rows anyway, so it is counted: authors, entities and aliases)
    rows = loader.row_counts(second, exact_below=0)
    unindexed = {"core.authors", "core.entities", "core.entity_aliases"}
    assert rows.estimated == {t for t, n in exact(second)[0].items() if n} - unindexed
    assert "core.entity_mentions" in rows.estimated
    assert rows.of_run == exact(second)[1]
    assert all(rows.totals[t] >= rows.of_run[t] for t in TABLE_NAMES)
    assert list(rows.totals) == list(TABLE_NAMES)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("analyze")
    rows = loader.row_counts(first, exact_below=0)
    assert (rows.totals, rows.of_run) == exact(first)  # ANALYZE read every row of tables this small
    assert loader.row_counts(first, exact_below=1_000_000).estimated == frozenset()
    # rows deleted since the ANALYZE: the live rows counted as they commit, not the pages kept
    query(db_url, "delete from core.papers where paper_id = 'PMC1' returning paper_id")
    deadline = time.monotonic() + 10  # a closed connection's statistics arrive as it ends
    while (rows := loader.row_counts(first, exact_below=0)).totals != exact(first)[0]:
        assert time.monotonic() < deadline, (rows.totals, exact(first)[0])
        time.sleep(0.1)


def _heap_blocks_read_for_another_run(url: str) -> int:
    """Heap blocks a BRIN scan of core.entity_mentions reads looking for a run with no rows."""
    with psycopg.connect(url) as conn:
        conn.execute("set enable_seqscan = off")  # the index, as on a table too big to scan
        [(plan,)] = conn.execute(
            "explain (analyze, format json) select count(*) from core.entity_mentions"
            " where run_id = %s",
            (uuid.uuid4(),),
        ).fetchall()
    scans = [plan[0]["Plan"]]
    blocks = 0
    while scans:
        node = scans.pop()
        blocks += node.get("Exact Heap Blocks", 0) + node.get("Lossy Heap Blocks", 0)
        scans.extend(node.get("Plans", []))
    return blocks


def test_summarised_run_id_indexes_find_a_run_s_rows_without_reading_the_others(
    db_url: str, loads: list[PaperLoad]
) -> None:
    loader = PostgresLoader(db_url)
    loader.load_batch(start(loader), loads)
    # the first block range is summarised when the index is made and kept up to date; the
    # ranges after it are not, until a VACUUM or a summary: on a table this small, make the
    # first one such a range (a real table's rows beyond its first megabyte are in them)
    query(
        db_url,
        "select brin_desummarize_range(i.indexrelid::regclass, 0) from pg_index i"
        " join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam"
        " where a.amname = 'brin'",
    )
    # a range written since the last summary is a possible match for every run id
    assert _heap_blocks_read_for_another_run(db_url) > 0
    assert loader.summarize_new_ranges() > 0
    assert _heap_blocks_read_for_another_run(db_url) == 0
    assert loader.summarize_new_ranges() == 0  # nothing new since
