"""`tomeflow parse | run | serve | migrate | db`: the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the stages log through `logging`; this sends their records to the flow run's logs in the UI
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "flows")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # `parse` has no run


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def cmd_parse(args: argparse.Namespace) -> int:
    """Print each seed file's parsed record as JSON; errors as JSON on stderr."""
    from flows.seeds import SeedParseError, read_seed

    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            record = read_seed(path)
        except SeedParseError as exc:
            failed += 1
            print(_json({"file": exc.path, "line": exc.line, "error": exc.reason}), file=sys.stderr)
            continue
        except OSError as exc:
            failed += 1
            print(_json({"file": name, "line": 0, "error": str(exc)}), file=sys.stderr)
            continue
        print(_json(dataclasses.asdict(record)))
        for problem in record.problems:
            print(
                _json({"file": name, "line": problem.line, "warning": problem.reason}),
                file=sys.stderr,
            )
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the ingest flow and print what it loaded."""
    from flows.ingest import DataQualityError, ingest

    try:
        summary = ingest(
            seeds=args.seeds,
            batch_size=args.batch_size,
            offline=args.offline,
            full_refresh=args.full_refresh,
            only=args.only,
        )
    except DataQualityError as exc:
        print(exc.summary.to_text())
        print(f"\nrun failed: {exc}", file=sys.stderr)
        return 1
    print(summary.to_text())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve prefect.yaml's deployment of the ingest flow, with its schedule, from this process."""
    from flows.deployment import serve

    serve(args.deployment)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database to the newest schema."""
    from flows.load.db import database_url, masked
    from flows.load.migrate import upgrade
    from flows.settings import get_settings

    url = database_url(get_settings())
    upgrade(url, args.revision)
    print(f"database at {args.revision}: {masked(url)}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Show how to reach the database, or stop the embedded one."""
    from flows.load.db import database_url, masked, psql_command
    from flows.settings import get_settings

    settings = get_settings()
    if args.action == "stop":
        if settings.database_url is not None:
            print("DATABASE_URL is set: tomeflow does not manage that server", file=sys.stderr)
            return 1
        from flows.load.db import stop_embedded

        print(stop_embedded(settings.pgdata))
        return 0
    url = database_url(settings)
    print(psql_command(url) if args.action == "psql" else masked(url))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `tomeflow` command."""
    parser = argparse.ArgumentParser(prog="tomeflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse seed files and print them as JSON")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("run", help="run the ingest flow")
    p.add_argument("--seeds", help="seed folder or file (default: TOMEFLOW_SEEDS_DIR or seeds/)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument(
        "--offline", action="store_true", help="no HTTP: re-parse full texts from the raw layer"
    )
    p.add_argument("--full-refresh", action="store_true", help="refetch and rewrite every paper")
    p.add_argument("--only", nargs="+", metavar="ID", help="reprocess just these paper ids")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("serve", help="serve the scheduled deployment from prefect.yaml")
    p.add_argument("--deployment", default="ingest-daily", help="deployment name in prefect.yaml")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--revision", default="head")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("db", help="the database: its url, a psql command, or stop the embedded one")
    p.add_argument("action", choices=("url", "psql", "stop"))
    p.set_defaults(func=cmd_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tomeflow` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
