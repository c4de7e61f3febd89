"""Modules Great Expectations imports and the gate never uses (flows/quality/deferred.py)."""

from __future__ import annotations

import subprocess
import sys

from flows.settings import PROJECT_ROOT


def run(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.split()


def test_a_deferred_module_is_imported_when_first_read_and_works_as_itself() -> None:
    code = (
        "import sys\n"
        "from flows.quality import deferred\n"
        "print(deferred.defer(('csv', 'email.mime.text', 'sys')))\n"
        "import csv\n"
        "from email.mime import text\n"
        "print(deferred.is_deferred('csv'), deferred.is_deferred('email.mime.text'))\n"
        "print(csv.QUOTE_ALL == 1, text.MIMEText('x')['Content-Type'])\n"
        "print(deferred.is_deferred('csv'), deferred.is_deferred('email.mime.text'))\n"
        "print(sys.modules['csv'].writer is csv.writer, csv.reader is sys.modules['csv'].reader)\n"
    )
    assert run(code) == [
        "['csv',",
        "'email.mime.text']",  # sys was imported already: left alone
        "True",
        "True",
        "True",
        "text/plain;",
        'charset="us-ascii"',
        "False",
        "False",
        "True",
        "True",
    ]


def test_the_gate_validates_and_documents_without_importing_scipy_stats_or_altair() -> None:
    code = (
        "import sys\n"
        "from flows.quality import deferred\n"
        "from flows.quality.process import GateSpec\n"
        "from flows.quality.suites import BEFORE_LOAD_SUITES, SUITES_DIR\n"
        "import tempfile, pathlib\n"
        "docs = pathlib.Path(tempfile.mkdtemp())\n"
        "gate = GateSpec(SUITES_DIR, docs, 3, 0.05).build()\n"
        "report = gate.validate_rows({s: [] for s in BEFORE_LOAD_SUITES}, 1)\n"
        "index = gate.build_data_docs('run-1')\n"
        "print(report.success, index.is_file(), 'great_expectations' in sys.modules)\n"
        "print(deferred.is_deferred('scipy.stats'), deferred.is_deferred('altair'))\n"
        "from scipy import stats\n"
        "print(round(float(stats.entropy([1, 2], [2, 1])), 3))\n"
    )
    assert run(code) == ["True", "True", "True", "True", "True", "0.231"]
