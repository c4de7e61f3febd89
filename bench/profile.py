"""Where a run's time goes: a py-spy profile of a run process tree, summed into a few lines.

`py-spy record --format raw --subprocesses` samples every busy thread of the run process and
of its children (the assemble process, a temporary Prefect server). Each sample is then
given one label, read from its stack:

- `import <package>`: the sample is importing a module; the package is the outermost one
  being imported that is not tomeflow's (importing flows.ingest imports prefect: the label
  is `import prefect`);
- `<module>.<function>` of the innermost tomeflow frame (flows/...), followed by
  `-> <package>` when the time is spent in a library's code below it;
- `<package> (no tomeflow frame)`: a library's own thread (prefect's event loop, ...).

The labels are summed per process (the run process, its worker processes: the assemble
process and the gate's process, told apart by their code; a Prefect server), and the
biggest are printed as shares of that process's samples: the profile lines beside a goal.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

RATE = 50  # samples per second per thread
PY_SPY = Path(sys.executable).parent / "py-spy"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
OURS = ("flows",)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# a process frame's command line may hold ";" itself (python -c "...; ..."): read it first
_PROCESS = re.compile(r'process (?P<pid>\d+):"(?P<cmd>.*?)"(?:;|$)')


def py_spy() -> str | None:
    """The py-spy executable (a dev dependency), or None when it is not installed."""
    if PY_SPY.exists():
        return str(PY_SPY)
    return shutil.which("py-spy")


def profiled(cmd: Sequence[str], out: Path) -> list[str]:
    """cmd run under py-spy, its raw samples written to out (py-spy must be installed)."""
    spy = py_spy()
    if spy is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    return [
        spy, "record", "--format", "raw", "--rate", str(RATE), "--subprocesses",
        "--nonblocking", "--full-filenames", "--output", str(out), "--", *cmd,
    ]  # fmt: skip


def role(command: str, frames: Sequence[tuple[str, str]] = ()) -> str:
    """Which process of the run a sample's process is (its command, else its frames)."""
    if "multiprocessing" in command and "resource_tracker" not in command:
        # the assemble and the gate processes are both spawned workers: their code tells
        if any(file.endswith("flows/quality/process.py") for _, file in frames):
            return "gate process"
        return "assemble process"
    if "uvicorn" in command or "prefect.server" in command or "server start" in command:
        return "Prefect server"
    return "run process"


def relative(file: str) -> str:
    """A frame's file (py-spy --full-filenames) as an import path: flows/batch.py,
    prefect/flows.py, threading.py; <frozen ...> and other pseudo-files as they are."""
    path = file.replace("\\", "/")
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.rsplit(marker, 1)[1]
    root = f"{PROJECT_ROOT.as_posix()}/"
    if path.startswith(root):
        return path[len(root) :]
    stdlib = re.search(r"/lib/python3\.\d+/(.*)$", path)
    return stdlib.group(1) if stdlib else path


def _package(file: str) -> str:
    """The top-level package (or module) of a frame's file."""
    if file.startswith("<frozen "):
        return file[len("<frozen ") : -1].split(".")[0]
    head = relative(file).lstrip("/").split("/")[0]
    return head.removesuffix(".py") or file


def _module(file: str) -> str:
    return relative(file).removesuffix(".py").replace("/", ".")


def label(frames: Sequence[tuple[str, str]]) -> str:
    """One label for a stack of (function, file) frames, outermost first."""
    importing = False
    for func, file in frames:
        if func == "_find_and_load":
            importing = True
        elif importing and func == "<module>":
            package = _package(file)
            if package not in OURS and package not in ("<string>", "runpy"):
                return f"import {package}"
    ours = [(func, file) for func, file in frames if _package(file) in OURS]
    if importing and (not ours or ours[-1][0] == "<module>"):
        return "import flows"
    if not frames:
        return "no Python frame (interpreter start-up, native threads)"
    leaf = _package(frames[-1][1])
    if not ours:
        return f"{leaf} (no tomeflow frame)"
    func, file = ours[-1]
    where = f"{_module(file)}.{func}"
    return where if leaf in OURS else f"{where} -> {leaf}"


def parse_line(line: str) -> tuple[str, int, list[tuple[str, str]], int] | None:
    """(process command, pid, frames, samples) of one raw line; None for one that is not."""
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    command, pid, frames = "", 0, []
    while (process := _PROCESS.match(stack)) is not None:
        command, pid = process.group("cmd"), int(process.group("pid"))
        stack = stack[process.end() :]
    for part in stack.split(";") if stack else ():
        frame = _FRAME.match(part)
        frames.append((frame.group("func"), frame.group("file")) if frame else (part, ""))
    return command, pid, frames, int(count)


@dataclass(slots=True)
class Profile:
    """Samples per label, per process role."""

    samples: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, lines: Iterable[str]) -> Profile:
        by_pid: dict[int, Counter[str]] = {}
        roles: dict[int, str] = {}
        for line in lines:
            parsed = parse_line(line)
            if parsed is None:
                continue
            command, pid, frames, count = parsed
            by_pid.setdefault(pid, Counter())[label(frames)] += count
            who = role(command, frames)
            if roles.get(pid) in (None, "assemble process"):
                roles[pid] = who  # one gate frame names the whole process
        profile = cls()
        for pid, labels in by_pid.items():
            profile.samples.setdefault(roles[pid], Counter()).update(labels)
        return profile

    @classmethod
    def load(cls, path: Path) -> Profile:
        with path.open(encoding="utf-8", errors="replace") as lines:
            return cls.read(lines)

    def total(self, who: str | None = None) -> int:
        """Samples of one process role (None: of every process)."""
        if who is not None:
            return sum(self.samples.get(who, Counter()).values())
        return sum(sum(c.values()) for c in self.samples.values())

    def seconds(self, who: str | None = None) -> float:
        """Busy thread-seconds the samples stand for."""
        return self.total(who) / RATE

    def top(self, who: str, n: int = 8) -> list[tuple[str, float]]:
        """The n biggest labels of a process role and their shares of its samples."""
        counter, total = self.samples.get(who, Counter()), self.total(who)
        return [(name, count / total) for name, count in counter.most_common(n)] if total else []

    def share(self, who: str, prefix: str) -> float:
        """The share of a role's samples whose label starts with prefix (e.g. "import ")."""
        counter, total = self.samples.get(who, Counter()), self.total(who)
        return sum(c for k, c in counter.items() if k.startswith(prefix)) / total if total else 0


@dataclass(frozen=True, slots=True)
class ProfiledRun:
    """What a profiled run is, and its profile (or why there is none)."""

    what: str
    profile: Profile | None = None
    wall: float = 0.0
    error: str | None = None
