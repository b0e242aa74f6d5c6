"""Pausing Python's cyclic garbage collector around bulk work.

A batch of tens of thousands of fresh objects (events, envelopes, rows) triggers the cyclic collector again and again,
and each run rescans everything the batch still holds; reference counting frees those objects anyway. Measured: a
quarter of a projection rebuild's time and about a fifth of the relay's. So bulk loops pause it for one batch (never
longer: the batch size bounds what can pile up) and restore it afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
