"""`tomeflow parse | check | run | serve | migrate | db | docs`: the command line.

Expected failures (a bad setting, an unreachable database, a missing seeds folder) are one
line on stderr and exit code 2; a failed quality gate is exit code 1 after the summary.
A traceback is shown only with --debug. No password appears in anything printed.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the stages log through `logging`; this sends their records to the flow run's logs in the UI
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "flows")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # `parse` has no run

CONFIG_EXIT = 2
FAILED_EXIT = 1
READER_PASSWORD_ENV = "TOMEFLOW_READER_PASSWORD"
NOTIFY_WEBHOOK_ENV = "TOMEFLOW_NOTIFY_WEBHOOK"  # a chat webhook's URL is a secret: not argv


class UsageError(Exception):
    """An expected failure of the command's input or configuration: one line, exit 2."""


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _settings() -> Any:
    from flows.settings import get_settings

    return get_settings()


def _database(settings: Any) -> str:
    """The configured database's URL, checked to answer before any work starts."""
    import psycopg

    from flows.load.db import database_url

    url = database_url(settings)
    with psycopg.connect(url, connect_timeout=10):
        pass
    return url


def cmd_parse(args: argparse.Namespace) -> int:
    """Print each seed file's parsed record as JSON; errors as JSON on stderr."""
    from flows.seeds import SeedParseError, read_seed

    failed = 0
    for name in args.files:
        try:
            record = read_seed(Path(name))
        except SeedParseError as exc:
            failed += 1
            print(_json({"file": exc.path, "line": exc.line, "error": exc.reason}), file=sys.stderr)
            continue
        except Exception as exc:  # unreadable file, or a page the parser chokes on
            failed += 1
            error = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            print(_json({"file": name, "line": 0, "error": error}), file=sys.stderr)
            continue
        print(_json(dataclasses.asdict(record)))
        for problem in record.problems:
            print(
                _json({"file": name, "line": problem.line, "warning": problem.reason}),
                file=sys.stderr,
            )
    return FAILED_EXIT if failed else 0


def cmd_check(args: argparse.Namespace) -> int:
    """Parse, normalise and validate seed files; print each problem; load nothing."""
    from flows.check import check_files

    paths = [Path(name) for name in args.files]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    findings = check_files(paths, _settings().reference_count_gap_tolerance)
    for finding in findings:
        print(finding)
    bad = {f.document for f in findings}
    print(f"{len(paths) - len(bad & {str(p) for p in paths})} of {len(paths)} documents clean,"
          f" {len(findings)} problems")  # fmt: skip
    return FAILED_EXIT if findings else 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the ingest flow and print what it loaded."""
    settings = _settings()
    seeds = Path(args.seeds) if args.seeds else settings.seeds_dir
    if not seeds.exists():
        raise UsageError(f"no seeds folder or file at {seeds} (--seeds or TOMEFLOW_SEEDS_DIR)")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.shard is not None:
        from flows.shards import Shard

        try:
            Shard.parse(args.shard)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    from flows.api_server import start_if_unset

    # with no Prefect API set, its temporary server comes up while this process checks the
    # database (starting the embedded one, if it is that) and imports Prefect and the flow
    server = start_if_unset()
    _database(settings)
    from flows.quality.process import close_early
    from flows.resources import start_gate_early

    # before the flow is imported: Great Expectations imports meanwhile, on the other core
    batch_size = args.batch_size or settings.batch_size
    try:
        start_gate_early(settings, seeds, batch_size, rewrite=args.full_refresh or bool(args.only))
        return _run(args, settings, seeds, server)
    finally:
        close_early()  # the server stops at exit, once Prefect has sent it the run's last logs


def _run(args: argparse.Namespace, settings: Any, seeds: Path, server: Any) -> int:
    from contextlib import nullcontext

    from flows import watch
    from flows.ingest import DataQualityError, ingest, task_runner
    from flows.report import RunSummary

    if args.task_runner is not None:
        chosen = settings.model_copy(update={"task_runner": args.task_runner})
        ingest = ingest.with_options(task_runner=task_runner(chosen))

    # bars on a terminal; piped or in a scheduler's log, the plain log lines say the same
    stop_watching = watch.listen(watch.StageBars()) if sys.stderr.isatty() else (lambda: None)
    try:
        with server.in_use() if server is not None else nullcontext():
            state = ingest(
                seeds=str(seeds),
                batch_size=args.batch_size,
                offline=args.offline,
                full_refresh=args.full_refresh,
                only=args.only,
                shard=args.shard,
                return_state=True,
            )
            summary = cast(RunSummary, state.result())
    except DataQualityError as exc:
        print(exc.summary.to_text())
        print(f"\nrun failed: {exc}", file=sys.stderr)
        return FAILED_EXIT
    finally:
        stop_watching()
    print(summary.to_text())
    if state.name != "Completed":
        print(f"\nrun {(state.name or '').lower()}: {state.message}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve prefect.yaml's deployment of the ingest flow, with its schedule, from this process."""
    from flows.deployment import DeploymentNotFound, serve

    try:
        serve(args.deployment)
    except DeploymentNotFound as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database to the newest schema."""
    from flows.load.db import masked
    from flows.load.migrate import upgrade

    url = _database(_settings())
    upgrade(url, args.revision)
    print(f"database at {args.revision}: {masked(url)}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Show how to reach the database (never starting one), or stop the embedded one."""
    from flows.load.db import masked, psql_command, stop_embedded

    settings = _settings()
    if args.action == "stop":
        if settings.database_url is not None:
            raise UsageError("DATABASE_URL is set: tomeflow does not manage that server")
        print(stop_embedded(settings.pgdata))
        return 0
    url = _running_database(settings)
    print(psql_command(url) if args.action == "psql" else masked(url))
    return 0


def cmd_grant_reader(args: argparse.Namespace) -> int:
    """Make a read-only login in tomeflow_reader and print how to connect with it."""
    import psycopg

    from flows.load.db import libpq_url, masked, psql_command, with_user
    from flows.load.roles import RoleError, check_name, grant_reader

    try:
        check_name(args.name)
    except RoleError as exc:
        raise UsageError(str(exc)) from None
    password = _reader_password(args)
    url = _database(_settings())
    try:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            made = grant_reader(conn, args.name, password)
    except RoleError as exc:
        raise UsageError(str(exc)) from None
    reader = with_user(url, args.name)
    done = "made" if made else "reset the password of"
    print(f"{done} reader {args.name}: it can read analytics, core, ops and raw, and nothing else "
          "(search_path analytics, core)")  # fmt: skip
    print(f"connect:  {psql_command(reader)}   (asks for the password)")
    print(f"url:      {masked(reader)}")
    return 0


def _reader_password(args: argparse.Namespace) -> str:
    # from a file (compose secrets), an environment variable, or a prompt; never echoed
    if args.password_file:
        try:
            return Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read {args.password_file}: {exc.strerror}") from None
    if os.environ.get(READER_PASSWORD_ENV):
        return os.environ[READER_PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise UsageError(
            f"no password: set {READER_PASSWORD_ENV}, pass --password-file, or run in a terminal"
        )
    import getpass

    password = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != password:
        raise UsageError("the two passwords differ")
    return password


def cmd_dictionary(args: argparse.Namespace) -> int:
    """Write the data dictionary from the database's catalog."""
    import psycopg

    from flows.load.db import libpq_url
    from flows.load.dictionary import DICTIONARY_PATH, render

    url = _database(_settings())
    with psycopg.connect(libpq_url(url)) as conn:
        text = render(conn)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.output) if args.output else DICTIONARY_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def _running_database(settings: Any) -> str:
    from flows.load.db import embedded_url_if_running

    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    url = embedded_url_if_running(settings.pgdata, settings.embedded_database)
    if url is None:
        raise UsageError(
            f"the embedded PostgreSQL in {settings.pgdata} is not running; "
            "`tomeflow run` or `tomeflow migrate` starts it"
        )
    return url


def cmd_automations(args: argparse.Namespace) -> int:
    """Make or update the Prefect automations of automations/ (idempotent)."""
    from flows.automations import INGEST_PROBLEMS, AutomationError, create_automations

    webhook = args.webhook or os.environ.get(NOTIFY_WEBHOOK_ENV)
    if not webhook:
        raise UsageError(f"no webhook: pass --webhook URL or set {NOTIFY_WEBHOOK_ENV}")
    path = Path(args.file) if args.file else INGEST_PROBLEMS
    try:
        lines = create_automations(webhook, path)
    except (AutomationError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    for line in lines:
        print(line)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Serve the Data Docs on loopback and print their URL (Ctrl-C stops)."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder = _settings().data_docs_dir
    if not (folder / "index.html").is_file():
        # nothing yet (a first run validates and builds them): serve a page that says so
        empty = Path(tempfile.mkdtemp(prefix="tomeflow-docs-"))
        (empty / "index.html").write_text(
            "<!DOCTYPE html><title>tomeflow Data Docs</title>"
            f"<p>No Data Docs in {folder} yet: the first run that validates builds them.</p>",
            encoding="utf-8",
        )
        print(f"no Data Docs in {folder} yet", file=sys.stderr)
        folder = empty
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {exc.strerror}") from None
    print(f"Data Docs of {folder}: http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `tomeflow` command."""
    parser = argparse.ArgumentParser(prog="tomeflow", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse seed files and print them as JSON")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("check", help="find every problem in seed files, loading nothing")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="run the ingest flow")
    p.add_argument("--seeds", help="seed folder or file (default: TOMEFLOW_SEEDS_DIR or seeds/)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument(
        "--offline", action="store_true", help="no HTTP: re-parse full texts from the raw layer"
    )
    p.add_argument("--full-refresh", action="store_true", help="refetch and rewrite every paper")
    p.add_argument("--only", nargs="+", metavar="ID", help="reprocess just these paper ids")
    p.add_argument("--shard", metavar="K/N", help="just shard K of N (by a hash of the paper id)")
    p.add_argument(
        "--task-runner",
        choices=("local", "dask"),
        help="where batches run (default: TOMEFLOW_TASK_RUNNER or local); dask: the scheduler "
        "at TOMEFLOW_DASK_ADDRESS, or a local cluster of TOMEFLOW_DASK_WORKERS processes",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("serve", help="serve the scheduled deployment from prefect.yaml")
    p.add_argument("--deployment", default="ingest-daily", help="deployment name in prefect.yaml")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--revision", default="head")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("docs", help="serve the Data Docs on loopback and print their URL")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("automations", help="Prefect automations declared in automations/")
    auto = p.add_subparsers(dest="action", required=True)
    p = auto.add_parser("create", help="make or update the ingest-problems notification")
    p.add_argument("--webhook", help=f"URL the automation POSTs to (or {NOTIFY_WEBHOOK_ENV})")
    p.add_argument("--file", help="automations file (default: automations/ingest-problems.yaml)")
    p.set_defaults(func=cmd_automations)
    _add_db(sub)
    return parser


def _add_db(sub: Any) -> None:
    p = sub.add_parser("db", help="the database: url, psql, stop, grant-reader, dictionary")
    db = p.add_subparsers(dest="action", required=True)
    for action, text in (
        ("url", "the database's URL, password masked"),
        ("psql", "a psql command that opens it"),
        ("stop", "stop the embedded PostgreSQL"),
    ):
        db.add_parser(action, help=text).set_defaults(func=cmd_db)
    p = db.add_parser("grant-reader", help="make a read-only login (password from a prompt)")
    p.add_argument("name", help="the login role to make, e.g. analyst")
    p.add_argument(
        "--password-file", help=f"read the password from a file (or {READER_PASSWORD_ENV})"
    )
    p.set_defaults(func=cmd_grant_reader)
    p = db.add_parser("dictionary", help="write the data dictionary from the catalog")
    p.add_argument("--output", help="a file, or - for stdout (default: docs/data-dictionary.md)")
    p.set_defaults(func=cmd_dictionary)


def _one_line(exc: BaseException, url: str | None) -> tuple[str, int]:
    """The message and exit code of an expected failure; a generic line for anything else."""
    import psycopg
    from pydantic import ValidationError

    from flows.load.db import masked, scrub

    if isinstance(exc, UsageError):
        return str(exc), CONFIG_EXIT
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        return f"configuration: {problems}", CONFIG_EXIT
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = masked(url) if url else "the database"
        message = f"cannot connect to {where}: {first} (check DATABASE_URL and that it runs)"
        return scrub(message, url), CONFIG_EXIT
    message = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
    return scrub(message, url), FAILED_EXIT


def _configured_url() -> str | None:
    # the password to keep out of messages, whether or not the settings are valid
    return os.environ.get("DATABASE_URL")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tomeflow` console script."""
    # the last thing at exit: the collector leaves what the command imported alone (Prefect's
    # and pydantic's objects took the interpreter 0.7 s to tear down after a run had ended)
    atexit.register(gc.freeze)
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args))
    except KeyboardInterrupt:
        print("tomeflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message, code = _one_line(exc, _configured_url())
        print(f"tomeflow {args.command}: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
