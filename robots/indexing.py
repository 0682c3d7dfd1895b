"""Index arrays as slices where they allow it: basic indexing reads and writes a view, where
an index array makes numpy gather and scatter (per reset or per step, that shows)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_slice"]


def as_slice(ids: Sequence[int] | np.ndarray) -> slice | np.ndarray:
    """Increasing, evenly spaced ids as a slice; anything else as an int64 index array."""
    a = np.asarray(ids, dtype=np.int64)
    if a.size == 1:
        return slice(int(a[0]), int(a[0]) + 1)
    if a.size:
        step = int(a[1] - a[0])
        if step > 0 and np.array_equal(a, a[0] + step * np.arange(a.size)):
            return slice(int(a[0]), int(a[-1]) + 1, step)
    return a
