"""SimOpt's trajectory discrepancy: weighted L1 + L2 between sim and real observations.

``D = w1 * sum_t sum_d |W_d (o_sim - o_real)_td| + w2 * sum_t ||W (o_sim - o_real)_t||^2``

computed on a chosen subset of observation fields after Gaussian smoothing along time (so
sensor noise does not dominate) and after aligning trajectories of unequal length (a sim
episode that crashed early, a real one that was cut short).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from simenvs.data import Rollouts

__all__ = ["Discrepancy", "align", "ALIGN_MODES"]

ALIGN_MODES = ("hold", "truncate", "time")


def align(
    a: np.ndarray,
    b: np.ndarray,
    mode: str = "hold",
    time_a: np.ndarray | None = None,
    time_b: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bring two (T, d) trajectories to a common length.

    ``hold`` repeats the shorter one's last row (an early crash keeps costing for the rest of
    the episode), ``truncate`` cuts both to the shorter, ``time`` interpolates ``a`` onto
    ``b``'s timestamps (for logs sampled at another or jittery rate), holding at the ends.
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"unknown alignment {mode!r}; allowed: {list(ALIGN_MODES)}")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"trajectories have different widths: {a.shape} vs {b.shape}")
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"cannot align an empty trajectory (lengths {len(a)} and {len(b)})")
    if mode == "time":
        if time_a is None or time_b is None:
            raise ValueError("alignment 'time' needs the timestamps of both trajectories")
        cols = [np.interp(time_b, time_a, a[:, j]) for j in range(a.shape[1])]
        return np.stack(cols, axis=1), b
    n = min(len(a), len(b)) if mode == "truncate" else max(len(a), len(b))

    def fit(x: np.ndarray) -> np.ndarray:
        if len(x) >= n:
            return x[:n]
        return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])

    return fit(a), fit(b)


@dataclass
class Discrepancy:
    """Weighted L1 + L2 trajectory discrepancy (Chebotar et al. 2019, eq. 3).

    ``fields``: observation fields to compare (None: all). ``weights``: per-field weight (a
    number applied to all its dimensions, or one per dimension); fields not named get 1.
    ``scale``: optional per-dimension divisor over the selected columns (e.g. typical ranges),
    see ``auto_scale``. ``smooth_sigma``: Gaussian smoothing in steps (0: none). ``reduce``:
    ``"sum"`` over time as in the paper, or ``"mean"`` to make episodes of different length
    comparable.
    """

    fields: Sequence[str] | None = None
    weights: Mapping[str, float | Sequence[float]] = field(default_factory=dict)
    w1: float = 0.5
    w2: float = 1.0
    smooth_sigma: float = 5.0
    align: str = "hold"
    reduce: str = "sum"
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.align not in ALIGN_MODES:
            raise ValueError(f"unknown alignment {self.align!r}; allowed: {list(ALIGN_MODES)}")
        if self.reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {self.reduce!r}")
        if self.smooth_sigma < 0 or self.w1 < 0 or self.w2 < 0:
            raise ValueError(
                "smooth_sigma, w1 and w2 must be >= 0, got "
                f"{self.smooth_sigma}, {self.w1}, {self.w2}"
            )

    def columns_and_weights(
        self, layout: Sequence[tuple[str, int, str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Column indices of the compared fields and the weight of each column."""
        names = [n for n, _, _ in layout]
        chosen = list(self.fields) if self.fields is not None else names
        unknown = [f for f in list(chosen) + list(self.weights) if f not in names]
        if unknown:
            raise ValueError(f"unknown observation fields {unknown}; layout has {names}")
        offsets, start = {}, 0
        for n, size, _ in layout:
            offsets[n] = (start, size)
            start += size
        cols, w = [], []
        for f in chosen:
            s, size = offsets[f]
            wf = np.broadcast_to(np.asarray(self.weights.get(f, 1.0), dtype=np.float64), (size,))
            cols.extend(range(s, s + size))
            w.extend(wf.tolist())
        w = np.asarray(w)
        if self.scale is not None:
            scale = np.asarray(self.scale, dtype=np.float64)
            if scale.shape != w.shape or np.any(scale <= 0):
                raise ValueError(
                    f"scale must be {w.shape[0]} positive numbers (one per compared column), "
                    f"got {scale.shape}"
                )
            w = w / scale
        return np.asarray(cols, dtype=np.int64), w

    def auto_scale(self, real: Rollouts, floor: float = 1e-3) -> Discrepancy:
        """Copy with ``scale`` = each compared column's spread in the real data (so metres,
        radians and m/s count alike); columns that barely move get ``floor`` x the largest."""
        cols, _ = Discrepancy(fields=self.fields).columns_and_weights(real.obs_layout)
        data = np.concatenate([e.obs[:, cols] for e in real.episodes])
        spread = data.std(axis=0)
        spread = np.maximum(spread, floor * max(float(spread.max()), 1e-12))
        return Discrepancy(
            fields=self.fields,
            weights=dict(self.weights),
            w1=self.w1,
            w2=self.w2,
            smooth_sigma=self.smooth_sigma,
            align=self.align,
            reduce=self.reduce,
            scale=spread,
        )

    def smooth(self, x: np.ndarray) -> np.ndarray:
        if self.smooth_sigma <= 0 or len(x) < 2:
            return x
        return gaussian_filter1d(x, self.smooth_sigma, axis=0, mode="nearest")

    def __call__(
        self,
        sim: np.ndarray,
        real: np.ndarray,
        layout: Sequence[tuple[str, int, str]],
        time_sim: np.ndarray | None = None,
        time_real: np.ndarray | None = None,
    ) -> float:
        """Discrepancy between one sim and one real observation trajectory, each (T, obs_dim).
        Non-finite sim values give ``inf`` (the optimizers treat it as the worst cost)."""
        cols, w = self.columns_and_weights(layout)
        s = np.asarray(sim, dtype=np.float64)[:, cols]
        r = np.asarray(real, dtype=np.float64)[:, cols]
        if not np.all(np.isfinite(s)):
            return float("inf")
        s, r = align(s, r, self.align, time_sim, time_real)
        diff = (self.smooth(s) - self.smooth(r)) * w
        per_step = self.w1 * np.abs(diff).sum(axis=1) + self.w2 * (diff**2).sum(axis=1)
        return float(per_step.sum() if self.reduce == "sum" else per_step.mean())

    def to_dict(self) -> dict:
        return {
            "fields": None if self.fields is None else list(self.fields),
            "weights": {k: np.asarray(v).tolist() for k, v in self.weights.items()},
            "w1": self.w1,
            "w2": self.w2,
            "smooth_sigma": self.smooth_sigma,
            "align": self.align,
            "reduce": self.reduce,
            "scale": None if self.scale is None else np.asarray(self.scale).tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Discrepancy:
        d = dict(d)
        if d.get("scale") is not None:
            d["scale"] = np.asarray(d["scale"], dtype=np.float64)
        return cls(**d)
