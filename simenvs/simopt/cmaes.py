"""CMA-ES (the ``cma`` package) behind the same ask/tell interface as REPS.

The search runs in coordinates normalized by the initial mean and std, so one step size fits
parameters of any unit. Checkpoints store every told batch (JSON); restoring replays them into
a fresh ``cma`` instance, which rebuilds mean, step size, covariance and evolution paths
without pickling the library's objects.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import cma
import numpy as np

from simenvs.randomization.distributions import MultivariateNormal

from .optimizer import ParamSpace, sanitize_costs

__all__ = ["CMAES"]


class CMAES:
    """CMA-ES over named bounded parameters; ``mean``/``cov`` report its current Gaussian."""

    def __init__(
        self,
        space: ParamSpace,
        mean: np.ndarray,
        cov: np.ndarray,
        *,
        popsize: int,
        min_std: float | np.ndarray | None = None,
        seed: int = 0,
    ):
        self.space = space
        mean = space.clip(np.asarray(mean, dtype=np.float64).reshape(-1))
        cov = np.asarray(cov, dtype=np.float64)
        std0 = np.sqrt(np.diag(cov)) if cov.ndim == 2 else np.sqrt(cov)
        if mean.shape != (space.dim,) or std0.shape != (space.dim,) or np.any(std0 <= 0):
            raise ValueError(
                f"mean and cov must describe {space.dim} parameters with positive variance, got "
                f"mean {mean.shape}, std {std0}"
            )
        if popsize < 2:
            raise ValueError(f"cmaes popsize must be >= 2, got {popsize}")
        self.popsize = int(popsize)
        self.seed = int(seed)
        self._m0, self._s0 = mean, std0
        min_std = 0.02 * std0 if min_std is None else np.broadcast_to(min_std, (space.dim,))
        self.min_std = np.asarray(min_std, dtype=np.float64)
        self.history: list[tuple[list[list[float]], list[float]]] = []
        self._es = self._fresh()
        self._pending: np.ndarray | None = None

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (x - self._m0) / self._s0

    def _x(self, z: np.ndarray) -> np.ndarray:
        return self._m0 + self._s0 * np.asarray(z)

    def _fresh(self) -> cma.CMAEvolutionStrategy:
        opts = {
            "bounds": [self._z(self.space.low).tolist(), self._z(self.space.high).tolist()],
            "popsize": self.popsize,
            "seed": self.seed + 1,  # cma treats seed 0 as "random"
            "verbose": -9,
            "minstd": (self.min_std / self._s0).tolist(),
            "tolfun": 0,
            "tolx": 0,
            "tolfunhist": 0,
            "tolstagnation": int(1e9),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            es = cma.CMAEvolutionStrategy(np.zeros(self.space.dim), 1.0, opts)
        return es

    @property
    def mean(self) -> np.ndarray:
        return self.space.clip(self._x(self._es.result.xfavorite))

    @property
    def cov(self) -> np.ndarray:
        c = self._es.sigma**2 * np.asarray(self._es.sm.covariance_matrix)
        return c * np.outer(self._s0, self._s0)

    def distribution(self) -> MultivariateNormal:
        return MultivariateNormal(self.space.names, self.mean, self.cov)

    def ask(self, n: int) -> np.ndarray:
        if n != self.popsize:
            raise ValueError(f"this CMA-ES asks {self.popsize} samples per update, not {n}")
        z = np.asarray(self._es.ask(), dtype=np.float64)
        self._pending = z
        return self.space.clip(self._x(z))

    def tell(self, samples: np.ndarray, costs: np.ndarray) -> dict[str, Any]:
        x = np.asarray(samples, dtype=np.float64)
        if x.shape != (self.popsize, self.space.dim) or np.size(costs) != self.popsize:
            raise ValueError(
                f"tell needs samples ({self.popsize}, {self.space.dim}) and {self.popsize} costs,"
                f" got {x.shape} and {np.shape(costs)}"
            )
        c, n_bad = sanitize_costs(costs)
        self._tell(x, c)
        self.history.append((x.tolist(), c.tolist()))
        return {
            "sigma": float(self._es.sigma),
            "n_nonfinite": n_bad,
            "best_cost": float(c.min()),
            "mean_cost": float(c.mean()),
        }

    def _tell(self, x: np.ndarray, c: np.ndarray) -> None:
        # A replayed batch still needs an ask() to keep cma's counters in step; when the asked
        # points match (same seed), tell those exact arrays so cma sees its own samples.
        asked = self._pending if self._pending is not None else np.asarray(self._es.ask())
        self._pending = None
        z = self._z(x)
        if asked.shape == z.shape and np.allclose(asked, z, rtol=0, atol=1e-9):
            z = asked
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._es.tell(list(z), c.tolist())

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "cmaes",
            "space": self.space.to_dict(),
            "mean0": self._m0.tolist(),
            "std0": self._s0.tolist(),
            "popsize": self.popsize,
            "seed": self.seed,
            "min_std": self.min_std.tolist(),
            "history": self.history,
            "mean": self.mean.tolist(),
            "cov": self.cov.tolist(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("kind") != "cmaes":
            raise ValueError(f"not a CMA-ES state (kind={state.get('kind')!r})")
        if list(state["space"]["names"]) != list(self.space.names):
            raise ValueError(
                f"checkpoint optimizes {state['space']['names']}, this run {list(self.space.names)}"
            )
        self._m0 = np.asarray(state["mean0"], dtype=np.float64)
        self._s0 = np.asarray(state["std0"], dtype=np.float64)
        self.popsize, self.seed = int(state["popsize"]), int(state["seed"])
        self.min_std = np.asarray(state["min_std"], dtype=np.float64)
        self._es = self._fresh()
        self._pending = None
        self.history = []
        for xs, cs in state["history"]:
            self._tell(np.asarray(xs), np.asarray(cs))
            self.history.append((xs, cs))
