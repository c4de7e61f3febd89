"""Helper processes that end when the process that started them is gone.

A ProcessPoolExecutor's worker waits for its next task on a queue whose two ends it holds
itself, so when the process that started it is killed (SIGKILL, the kernel's OOM killer) it
never reads end-of-file and waits for ever, holding its memory (the gate's process: 160 MB).
tomeflow's helper processes (the gate's, the assemble processes) wait on their parent
instead: multiprocessing gives each child its parent's sentinel, a pipe only the parent
holds open, which reads end-of-file the moment the parent is gone, however it ended (also
while the child was still starting up).
"""

from __future__ import annotations

import multiprocessing
import os
import threading


def exit_with_parent() -> None:
    """From now on this process exits as soon as its multiprocessing parent is gone.

    A daemon thread waits on the parent's sentinel; there is nobody left to report to, so the
    process then exits at once, without cleanup (status 1). In a process that multiprocessing
    did not start this does nothing.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns once the parent's end of the sentinel pipe is closed
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
