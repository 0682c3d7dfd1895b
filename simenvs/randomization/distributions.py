"""Distributions a randomization spec is made of.

Each is frozen data validated on construction, samples with an explicit
``np.random.Generator`` (never global state) and round-trips through plain dicts
so specs can live in YAML files and run folders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "Distribution",
    "Constant",
    "Uniform",
    "LogUniform",
    "Normal",
    "TruncatedNormal",
    "Categorical",
    "MultivariateNormal",
    "distribution_from_dict",
]


def _as_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return arr


class Distribution:
    """A scalar or fixed-shape distribution; ``support()`` bounds every sample."""

    kind: str = ""

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> Any:
        raise NotImplementedError

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest value a sample can take (may be +-inf)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def mean(self) -> Any:
        raise NotImplementedError


def _tolist(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else x


@dataclass(frozen=True)
class Constant(Distribution):
    value: Any
    kind: str = field(default="constant", init=False)

    def sample(self, rng, shape=()):
        v = self.value
        if isinstance(v, (str, bool)) or v is None:
            return v
        return np.broadcast_to(np.asarray(v, dtype=np.float64), shape).copy() if shape else v

    def support(self):
        if isinstance(self.value, (str, bool)) or self.value is None:
            return (np.array(-np.inf), np.array(np.inf))
        v = np.asarray(self.value, dtype=np.float64)
        return v, v

    def mean(self):
        return self.value

    def to_dict(self):
        return {"dist": "constant", "value": _tolist(self.value)}


@dataclass(frozen=True)
class Uniform(Distribution):
    low: Any
    high: Any
    kind: str = field(default="uniform", init=False)

    def __post_init__(self):
        lo, hi = _as_array(self.low, "uniform.low"), _as_array(self.high, "uniform.high")
        if np.any(lo > hi):
            raise ValueError(f"uniform needs low <= high, got low={self.low!r} high={self.high!r}")

    def sample(self, rng, shape=()):
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        out = rng.uniform(lo, hi, size=shape or np.broadcast(lo, hi).shape)
        return float(out) if np.ndim(out) == 0 else out

    def support(self):
        return np.asarray(self.low, float), np.asarray(self.high, float)

    def mean(self):
        return 0.5 * (np.asarray(self.low, float) + np.asarray(self.high, float))

    def to_dict(self):
        return {"dist": "uniform", "low": _tolist(self.low), "high": _tolist(self.high)}


@dataclass(frozen=True)
class LogUniform(Distribution):
    low: Any
    high: Any
    kind: str = field(default="log_uniform", init=False)

    def __post_init__(self):
        lo, hi = _as_array(self.low, "log_uniform.low"), _as_array(self.high, "log_uniform.high")
        if np.any(lo <= 0) or np.any(lo > hi):
            raise ValueError(
                f"log_uniform needs 0 < low <= high, got low={self.low!r} high={self.high!r}"
            )

    def sample(self, rng, shape=()):
        lo, hi = np.log(np.asarray(self.low, float)), np.log(np.asarray(self.high, float))
        out = np.exp(rng.uniform(lo, hi, size=shape or np.broadcast(lo, hi).shape))
        return float(out) if np.ndim(out) == 0 else out

    def support(self):
        return np.asarray(self.low, float), np.asarray(self.high, float)

    def mean(self):
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        return np.where(hi > lo, (hi - lo) / np.maximum(np.log(hi / lo), 1e-300), lo)

    def to_dict(self):
        return {"dist": "log_uniform", "low": _tolist(self.low), "high": _tolist(self.high)}


@dataclass(frozen=True)
class Normal(Distribution):
    """Unbounded normal; samples are clipped to the parameter's physical bounds."""

    mean_: Any
    std: Any
    kind: str = field(default="normal", init=False)

    def __post_init__(self):
        _as_array(self.mean_, "normal.mean")
        if np.any(_as_array(self.std, "normal.std") < 0):
            raise ValueError(f"normal needs std >= 0, got std={self.std!r}")

    def sample(self, rng, shape=()):
        m, s = np.asarray(self.mean_, float), np.asarray(self.std, float)
        out = rng.normal(m, s, size=shape or np.broadcast(m, s).shape)
        return float(out) if np.ndim(out) == 0 else out

    def support(self):
        m = np.asarray(self.mean_, float)
        return np.full_like(m, -np.inf), np.full_like(m, np.inf)

    def mean(self):
        return self.mean_

    def to_dict(self):
        return {"dist": "normal", "mean": _tolist(self.mean_), "std": _tolist(self.std)}


@dataclass(frozen=True)
class TruncatedNormal(Distribution):
    mean_: Any
    std: Any
    low: Any
    high: Any
    kind: str = field(default="truncated_normal", init=False)

    def __post_init__(self):
        m = _as_array(self.mean_, "truncated_normal.mean")
        s = _as_array(self.std, "truncated_normal.std")
        lo, hi = (
            _as_array(self.low, "truncated_normal.low"),
            _as_array(self.high, "truncated_normal.high"),
        )
        if np.any(s <= 0):
            raise ValueError(f"truncated_normal needs std > 0, got std={self.std!r}")
        if np.any(lo >= hi):
            raise ValueError(
                f"truncated_normal needs low < high, got low={self.low!r} high={self.high!r}"
            )
        del m

    def sample(self, rng, shape=()):
        m, s = np.asarray(self.mean_, float), np.asarray(self.std, float)
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        a, b = (lo - m) / s, (hi - m) / s
        size = shape or np.broadcast(m, s, lo, hi).shape
        out = stats.truncnorm.rvs(a, b, loc=m, scale=s, size=size or None, random_state=rng)
        out = np.clip(out, lo, hi)
        return float(out) if np.ndim(out) == 0 else out

    def support(self):
        return np.asarray(self.low, float), np.asarray(self.high, float)

    def mean(self):
        return self.mean_

    def to_dict(self):
        return {
            "dist": "truncated_normal",
            "mean": _tolist(self.mean_),
            "std": _tolist(self.std),
            "low": _tolist(self.low),
            "high": _tolist(self.high),
        }


@dataclass(frozen=True)
class Categorical(Distribution):
    choices: tuple
    probs: tuple | None = None
    kind: str = field(default="categorical", init=False)

    def __post_init__(self):
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ValueError("categorical needs at least one choice")
        if self.probs is not None:
            p = _as_array(self.probs, "categorical.probs")
            if p.shape != (len(self.choices),) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
                raise ValueError(
                    f"categorical probs must be {len(self.choices)} non-negative numbers summing "
                    f"to 1, got {self.probs!r}"
                )
            object.__setattr__(self, "probs", tuple(float(x) for x in p))

    def sample(self, rng, shape=()):
        idx = rng.choice(len(self.choices), p=self.probs)
        v = self.choices[int(idx)]
        return v.item() if isinstance(v, np.generic) else v

    def support(self):
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in self.choices):
            return np.array(min(self.choices), float), np.array(max(self.choices), float)
        return np.array(-np.inf), np.array(np.inf)

    def mean(self):
        return self.choices[int(np.argmax(self.probs))] if self.probs else self.choices[0]

    def to_dict(self):
        d: dict[str, Any] = {"dist": "categorical", "choices": list(self.choices)}
        if self.probs is not None:
            d["probs"] = list(self.probs)
        return d


@dataclass(frozen=True)
class MultivariateNormal:
    """Joint Gaussian over named scalar parameters: the distribution SimOpt adapts."""

    names: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray

    def __post_init__(self):
        names = tuple(self.names)
        mean = _as_array(self.mean, "multivariate_normal.mean").reshape(-1)
        cov = _as_array(self.cov, "multivariate_normal.cov")
        n = len(names)
        if len(set(names)) != n or n == 0:
            raise ValueError(f"multivariate_normal needs distinct names, got {list(names)}")
        if mean.shape != (n,):
            raise ValueError(f"multivariate_normal mean must have {n} entries, got {mean.shape}")
        if cov.ndim == 1 and cov.shape == (n,):
            cov = np.diag(cov)
        if cov.shape != (n, n):
            raise ValueError(f"multivariate_normal cov must be {n}x{n}, got {cov.shape}")
        if not np.allclose(cov, cov.T, atol=1e-10):
            raise ValueError("multivariate_normal cov must be symmetric")
        if np.min(np.linalg.eigvalsh(cov)) < -1e-10:
            raise ValueError("multivariate_normal cov must be positive semi-definite")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        return rng.multivariate_normal(self.mean, self.cov, size=n, method="eigh")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dist": "multivariate_normal",
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "cov": self.cov.tolist(),
        }


_KINDS = {
    "constant": ("value",),
    "uniform": ("low", "high"),
    "log_uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "truncated_normal": ("mean", "std", "low", "high"),
    "categorical": ("choices",),
}


def distribution_from_dict(d: Any, where: str = "") -> Distribution:
    """Build a distribution from its dict form.

    Shorthands: a number, string or bool is a constant; ``[low, high]`` of two numbers is
    uniform; ``{"choices": [...]}`` is categorical.
    """
    at = f" at {where!r}" if where else ""
    if isinstance(d, Distribution):
        return d
    if isinstance(d, (int, float, str, bool)) or d is None:
        return Constant(d)
    if isinstance(d, Sequence) and len(d) == 2 and all(isinstance(x, (int, float)) for x in d):
        return Uniform(float(d[0]), float(d[1]))
    if not isinstance(d, Mapping):
        raise ValueError(
            f"cannot read a distribution{at} from {d!r}: use a number, [low, high] or a dict with "
            f"'dist' in {sorted(_KINDS)}"
        )
    d = dict(d)
    kind = d.pop("dist", "categorical" if "choices" in d else None)
    if kind not in _KINDS:
        raise ValueError(f"unknown distribution {kind!r}{at}; allowed: {sorted(_KINDS)}")
    required = _KINDS[kind]
    optional = {"categorical": ("probs",)}.get(kind, ())
    missing = [k for k in required if k not in d]
    extra = [k for k in d if k not in required + optional]
    if missing or extra:
        raise ValueError(
            f"{kind} distribution{at} needs keys {list(required)}"
            + (f" (optional {list(optional)})" if optional else "")
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {extra}" if extra else "")
        )
    try:
        if kind == "constant":
            return Constant(d["value"])
        if kind == "uniform":
            return Uniform(d["low"], d["high"])
        if kind == "log_uniform":
            return LogUniform(d["low"], d["high"])
        if kind == "normal":
            return Normal(d["mean"], d["std"])
        if kind == "truncated_normal":
            return TruncatedNormal(d["mean"], d["std"], d["low"], d["high"])
        return Categorical(tuple(d["choices"]), d.get("probs"))
    except ValueError as e:
        raise ValueError(f"{e}{at}") from None
