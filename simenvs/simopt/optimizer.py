"""What REPS and CMA-ES share: the parameter space, the ask/tell protocol, cost sanitizing.

Optimizers work on a Gaussian N(mean, cov) over named scalar parameters, clip every sample to
the parameters' bounds, and replace non-finite costs (a diverged simulation) by the worst cost
of the batch. ``state_dict()`` is plain JSON so runs checkpoint without pickles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from simenvs.randomization.distributions import MultivariateNormal

__all__ = [
    "ParamSpace",
    "Optimizer",
    "sanitize_costs",
    "floor_variance",
    "make_optimizer",
    "OPTIMIZERS",
]


@dataclass(frozen=True)
class ParamSpace:
    """Named scalar parameters with hard bounds (samples are clipped into [low, high])."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        names = tuple(self.names)
        low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"parameter names must be distinct and non-empty, got {list(names)}")
        if low.shape != (len(names),) or high.shape != (len(names),):
            raise ValueError(
                f"bounds must have one entry per parameter ({len(names)}), got {low.shape} and "
                f"{high.shape}"
            )
        bad = [n for n, lo, hi in zip(names, low, high) if not lo < hi]
        if bad:
            raise ValueError(f"parameters {bad} need low < high, got low={low} high={high}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def dim(self) -> int:
        return len(self.names)

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.low, self.high)

    def to_dicts(self, x: np.ndarray) -> list[dict[str, float]]:
        """Rows of a (n, dim) sample matrix as {name: value} dicts."""
        x = np.atleast_2d(x)
        return [{n: float(v) for n, v in zip(self.names, row)} for row in x]

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParamSpace:
        return cls(tuple(d["names"]), np.asarray(d["low"]), np.asarray(d["high"]))


class Optimizer(Protocol):
    """Ask/tell search over the Gaussian that SimOpt adapts (lower cost is better)."""

    space: ParamSpace

    @property
    def mean(self) -> np.ndarray: ...
    @property
    def cov(self) -> np.ndarray: ...
    def ask(self, n: int) -> np.ndarray: ...
    def tell(self, samples: np.ndarray, costs: np.ndarray) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
    def distribution(self) -> MultivariateNormal: ...


def sanitize_costs(costs: Sequence[float]) -> tuple[np.ndarray, int]:
    """Replace NaN/inf by the worst finite cost; returns (costs, number replaced).

    Raises when no cost is finite: no update can be made from such a batch.
    """
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(c)
    if bad.all():
        raise ValueError(
            f"all {c.size} costs are non-finite ({c[:5].tolist()}...): nothing to learn"
        )
    worst = float(np.max(c[~bad]))
    c = np.where(bad, worst, c)
    return c, int(bad.sum())


def floor_variance(cov: np.ndarray, min_std: np.ndarray) -> np.ndarray:
    """Raise each marginal std to at least ``min_std`` keeping correlations, and keep the
    matrix well conditioned (tiny eigenvalues lifted), so the search never collapses."""
    cov = 0.5 * (cov + cov.T)
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    target = np.maximum(std, min_std)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(std > 0, target / std, 1.0)
    cov = cov * np.outer(ratio, ratio)
    zero = std <= 0
    cov[zero, :] = 0.0
    cov[:, zero] = 0.0
    cov[zero, zero] = target[zero] ** 2
    vals, vecs = np.linalg.eigh(cov)
    floor = 1e-4 * float(np.min(min_std)) ** 2
    vals = np.maximum(vals, floor)
    return (vecs * vals) @ vecs.T


OPTIMIZERS = ("reps", "cmaes")


def make_optimizer(
    kind: str,
    space: ParamSpace,
    mean: np.ndarray,
    cov: np.ndarray,
    *,
    seed: int = 0,
    popsize: int | None = None,
    **kwargs: Any,
) -> Optimizer:
    """``"reps"`` (SimOpt's choice) or ``"cmaes"`` (DROPO's), with the same interface."""
    if kind == "reps":
        from .reps import REPS

        return REPS(space, mean, cov, seed=seed, **kwargs)
    if kind == "cmaes":
        from .cmaes import CMAES

        if popsize is None:
            raise ValueError("cmaes needs popsize (samples per update)")
        return CMAES(space, mean, cov, popsize=popsize, seed=seed, **kwargs)
    raise ValueError(f"unknown optimizer {kind!r}; allowed: {list(OPTIMIZERS)}")
