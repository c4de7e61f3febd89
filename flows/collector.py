"""CPython's cyclic garbage collector, set for the processes that hold batches of records.

A batch is about 200 records a paper (100,000 objects for 500 papers), nearly all alive until
the batch is loaded: objects the collector walks again and again and never frees. With
CPython's thresholds (700, 10, 10) a young collection runs every 700 new objects, and every
tenth of those walks the middle generation; and the modules each process imported (Prefect's
140,000 objects, Great Expectations' 250,000) are walked by every full collection.

`settle()` moves what exists into the permanent generation (`gc.freeze()`: the imports, not
walked again) and lets young collections wait for more new objects. Cycles are still
collected, later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # new objects between young collections (CPython's default: 700)


def settle() -> None:
    """Leave what this process holds now to the permanent generation; collect young less often."""
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if young and young < YOUNG_THRESHOLD:  # 0: the collector is off; leave it so
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
