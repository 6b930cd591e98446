"""Measuring a client's peak training memory with PyTorch's profiler.

How: the local step runs under ``torch.profiler`` with ``profile_memory=True``; PyTorch's memory
profiler (``torch.profiler._memory_profiler``, the analysis behind ``export_memory_timeline``)
replays every CPU allocator event of the step (tensors that existed before it included) into a
timeline of live bytes, and the peak is the maximum of that timeline. This is the allocator's own
record of what the step held, not a sum of tensor sizes we expect. The private API is pinned by
the torch version in constraints.txt.

Kineto (the profiler's backend) prints two "USDT: ... profiler_start/stop" lines to stderr per
profiled step, hundreds per run from the Ray actors; ``KINETO_LOG_LEVEL=6`` (above its highest
level) silences them unless the user set the variable. Kineto reads it when first profiling.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from torch.profiler import ProfilerActivity, profile

T = TypeVar("T")
os.environ.setdefault("KINETO_LOG_LEVEL", "6")


def measure_peak_bytes(fn: Callable[[], T]) -> tuple[T, int]:
    """Run ``fn`` once under the memory profiler; return its result and the peak live CPU bytes."""
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        result = fn()
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline("cpu")
    return result, max((sum(row) for row in sizes), default=0)
