"""The benchmark's py-spy summary: each sample gets one label, summed per process."""

from __future__ import annotations

from bench.profile import RATE, Profile, label, parse_line

RUN = 'process 10:"/venv/bin/python -m bench.child run seeds --result r.json"'
WORKER = (
    'process 11:"/venv/bin/python -c from multiprocessing.spawn import spawn_main; '
    'spawn_main(tracker_fd=6, pipe_handle=13) --multiprocessing-fork"'
)
IMPORT = (
    "_find_and_load (<frozen importlib._bootstrap>:1176);"
    "_load_unlocked (<frozen importlib._bootstrap>:690)"
)


def frames(*names: str) -> list[tuple[str, str]]:
    parsed = parse_line(";".join([RUN, *names]) + " 1")
    assert parsed is not None
    return parsed[2]


def test_an_import_is_labelled_with_the_outermost_package_not_ours() -> None:
    stack = frames(
        "<module> (bench/child.py:1)",
        IMPORT,
        "<module> (flows/ingest.py:7)",
        IMPORT,
        "<module> (prefect/__init__.py:3)",
        IMPORT,
        "<module> (pydantic/main.py:9)",
    )
    assert label(stack) == "import prefect"


def test_importing_only_our_modules_is_import_flows() -> None:
    stack = frames("<module> (bench/child.py:1)", IMPORT, "<module> (flows/ingest.py:7)")
    assert label(stack) == "import flows"


def test_time_below_our_code_names_our_innermost_function_and_the_library() -> None:
    stack = frames(
        "run (bench/child.py:50)",
        "ingest_batch (flows/batch.py:240)",
        "validate (flows/tasks.py:90)",
        "_validate_batch (flows/quality/gate.py:150)",
        "run (great_expectations/validator/validator.py:300)",
    )
    assert label(stack) == "flows.quality.gate._validate_batch -> great_expectations"
    assert label(stack[:3]) == "flows.tasks.validate"


def test_a_library_thread_without_our_frames_is_named_by_its_package() -> None:
    stack = frames("_bootstrap (threading.py:1002)", "run_forever (asyncio/base_events.py:608)")
    assert label(stack) == "asyncio (no tomeflow frame)"


def test_samples_are_summed_per_process_and_shares_are_of_that_process() -> None:
    lines = [
        f"{RUN};run (bench/child.py:50);begin (flows/run.py:10) 30",
        f"{RUN};run (bench/child.py:50);{IMPORT};<module> (great_expectations/__init__.py:1) 70",
        f"{RUN};{WORKER};assemble_batch (flows/assemble.py:40) 25",
        "not a sample line",
    ]
    profile = Profile.read(lines)
    assert profile.total("run process") == 100
    assert profile.total("assemble process") == 25
    assert profile.total("gate process") == 0
    assert profile.top("run process", 1) == [("import great_expectations", 0.7)]
    assert profile.share("run process", "import ") == 0.7
    assert profile.seconds() == 125 / RATE


def test_full_filenames_are_read_as_import_paths() -> None:
    stack = frames(
        "run (/work/x/bench/child.py:50)",
        "ingest_batch (/work/x/.venv/lib/python3.11/site-packages/flows/batch.py:240)",
        "_run_once (/usr/lib/python3.11/asyncio/base_events.py:1900)",
    )
    assert label(stack) == "flows.batch.ingest_batch -> asyncio"


def test_a_thread_without_python_frames_has_a_label_of_its_own() -> None:
    assert label([]).startswith("no Python frame")


def test_the_gate_s_process_is_told_from_the_assemble_process_by_its_code() -> None:
    gate = WORKER.replace("process 11:", "process 12:")
    lines = [
        f"{RUN};{gate};_bootstrap (threading.py:1);{IMPORT};<module> (pandas/__init__.py:1) 5",
        f"{RUN};{gate};_start (flows/quality/process.py:80);{IMPORT};"
        "<module> (great_expectations/__init__.py:1) 40",
        f"{RUN};{WORKER};assemble_batch (flows/assemble.py:40) 25",
    ]
    profile = Profile.read(lines)
    assert profile.total("gate process") == 45
    assert profile.top("gate process", 1) == [("import great_expectations", 40 / 45)]
    assert profile.total("assemble process") == 25
