"""Read parameter bounds and prior moments from a simenvs env's registry and randomization.

SimOpt's Gaussian lives on scalar numeric parameters: scalar float params by name
(``dynamics.quad.mass``) or single elements of vector params (``dynamics.quad.drag[0]``).
Its starting point (the "prior") is the moment match of the env's randomization for each of
them, and its hard bounds are the parameters' physical bounds. ``expand_params`` turns
element values back into whole vectors for ``reset(options={"params": ...})``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from scipy import stats

from simenvs.randomization.distributions import (
    Categorical,
    Constant,
    Distribution,
    LogUniform,
    Normal,
    TruncatedNormal,
    Uniform,
)

from .optimizer import ParamSpace

__all__ = [
    "ParamRef",
    "param_refs",
    "param_space",
    "prior_moments",
    "prior_range",
    "identifiable_dynamics",
    "expand_params",
    "spec_fragment",
]

_ELEMENT = re.compile(r"^(?P<base>[^\[\]]+)\[(?P<i>\d+)\]$")


@dataclass(frozen=True)
class ParamRef:
    """A scalar SimOpt can adapt: a scalar param (``index`` None) or one element of a vector."""

    name: str
    param: Any  # ParamDef
    index: int | None

    def _pick(self, x: Any) -> float:
        arr = np.broadcast_to(np.asarray(x, dtype=np.float64), self.param.shape)
        return float(arr if self.index is None else arr[self.index])

    @property
    def bounds(self) -> tuple[float, float]:
        lo, hi = self.param.bounds()
        return self._pick(lo), self._pick(hi)

    @property
    def nominal(self) -> float:
        return self._pick(self.param.nominal)


def _adaptable(p: Any) -> bool:
    return (
        not p.is_categorical
        and p.dtype is float
        and len(p.shape) <= 1
        and not p.name.startswith("appearance.")
    )


def param_refs(env: gym.Env, names: Sequence[str]) -> list[ParamRef]:
    """Resolve names (``param`` or ``param[i]``) against the env's registry, with clear errors."""
    base = env.unwrapped
    if not hasattr(base, "registry"):
        raise TypeError(f"{type(base).__name__} has no parameter registry (not a simenvs SimEnv)")
    by_name = {p.name: p for p in base.registry}
    allowed = sorted(
        n if p.shape == () else f"{n}[0..{p.shape[0] - 1}]"
        for n, p in by_name.items()
        if _adaptable(p) and not n.startswith("layout.")
    )
    out = []
    for name in names:
        m = _ELEMENT.match(name)
        key, idx = (m["base"], int(m["i"])) if m else (name, None)
        p = by_name.get(key)
        ok = p is not None and _adaptable(p)
        if ok and p.shape != ():
            ok = idx is not None and idx < p.shape[0]
        elif ok:
            ok = idx is None
        if not ok:
            why = "unknown" if p is None else f"not adaptable as written (shape {p.shape})"
            raise ValueError(f"parameter {name!r} is {why}; SimOpt can adapt: {allowed}")
        out.append(ParamRef(name, p, idx))
    return out


def param_space(env: gym.Env, names: Sequence[str]) -> ParamSpace:
    refs = param_refs(env, names)
    low = [r.bounds[0] for r in refs]
    high = [r.bounds[1] for r in refs]
    return ParamSpace(tuple(names), np.asarray(low), np.asarray(high))


def _dist_of(env: gym.Env, ref: ParamRef) -> tuple[Distribution | None, tuple[float, float] | None]:
    bound = env.unwrapped.randomization.bind(env.unwrapped.registry)
    for j in bound.joint:
        if ref.param.name in j.names:
            i = j.names.index(ref.param.name)
            return None, (float(j.mean[i]), float(np.sqrt(j.cov[i, i])))
    return bound.dists.get(ref.param.name), None


def _moments(dist: Distribution | None, ref: ParamRef) -> tuple[float, float]:
    pick = ref._pick
    if isinstance(dist, Uniform):
        a, b = pick(dist.low), pick(dist.high)
        return 0.5 * (a + b), (b - a) / np.sqrt(12.0)
    if isinstance(dist, LogUniform):
        a, b = pick(dist.low), pick(dist.high)
        if b <= a:
            return a, 0.0
        k = np.log(b / a)
        m = (b - a) / k
        return m, float(np.sqrt(max((b * b - a * a) / (2 * k) - m * m, 0.0)))
    if isinstance(dist, TruncatedNormal):
        m, s = pick(dist.mean_), pick(dist.std)
        a, b = (pick(dist.low) - m) / s, (pick(dist.high) - m) / s
        mean, var = stats.truncnorm.stats(a, b, loc=m, scale=s, moments="mv")
        return float(mean), float(np.sqrt(var))
    if isinstance(dist, Normal):
        return pick(dist.mean_), pick(dist.std)
    if isinstance(dist, Categorical) and ref.index is None:
        c = np.asarray(dist.choices, dtype=np.float64)
        p = np.full(c.size, 1 / c.size) if dist.probs is None else np.asarray(dist.probs)
        m = float(p @ c)
        return m, float(np.sqrt(p @ (c - m) ** 2))
    if isinstance(dist, Constant):
        return pick(dist.value), 0.0
    return ref.nominal, 0.0


def prior_moments(
    env: gym.Env,
    names: Sequence[str],
    ranges: Mapping[str, Sequence[float]] | None = None,
    fallback_rel_std: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each parameter under the env's randomization (a uniform of ``ranges``
    where given). A parameter the env does not randomize gets its nominal and
    ``fallback_rel_std`` x its bound range: SimOpt needs some spread to search."""
    ranges = dict(ranges or {})
    unknown = sorted(set(ranges) - set(names))
    if unknown:
        raise ValueError(f"prior ranges given for {unknown}, which are not adapted ({list(names)})")
    mean, std = [], []
    for ref in param_refs(env, names):
        lo, hi = ref.bounds
        if ref.name in ranges:
            a, b = (float(x) for x in ranges[ref.name])
            tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
            if not lo - tol <= a < b <= hi + tol:
                raise ValueError(
                    f"prior range for {ref.name} must satisfy {lo:g} <= low < high <= {hi:g}, "
                    f"got {a:g}, {b:g}"
                )
            m, s = 0.5 * (a + b), (b - a) / np.sqrt(12.0)
        else:
            dist, joint = _dist_of(env, ref)
            m, s = joint if joint is not None else _moments(dist, ref)
        if s <= 0:
            s = fallback_rel_std * (hi - lo)
        mean.append(m)
        std.append(s)
    return np.asarray(mean), np.asarray(std)


def prior_range(env: gym.Env, name: str) -> tuple[float, float]:
    """The interval the env's randomization draws ``name`` from (mean +- 2 std for Gaussians)."""
    (ref,) = param_refs(env, [name])
    dist, joint = _dist_of(env, ref)
    lo, hi = ref.bounds
    if isinstance(dist, (Uniform, LogUniform, TruncatedNormal)):
        a, b = dist.support()
        return ref._pick(a), ref._pick(b)
    if joint is not None or isinstance(dist, Normal):
        m, s = joint if joint is not None else (ref._pick(dist.mean_), ref._pick(dist.std))
        return max(m - 2 * s, lo), min(m + 2 * s, hi)
    if isinstance(dist, Categorical) and ref.index is None:
        c = [float(x) for x in dist.choices]
        return min(c), max(c)
    v = ref._pick(dist.value) if isinstance(dist, Constant) else ref.nominal
    return v, v


def identifiable_dynamics(env: gym.Env) -> list[str]:
    """Scalar float ``dynamics.*`` params (and elements) that the env's randomization varies."""
    out = []
    for p in env.unwrapped.registry:
        if not p.name.startswith("dynamics.") or not _adaptable(p):
            continue
        names = [p.name] if p.shape == () else [f"{p.name}[{i}]" for i in range(p.shape[0])]
        for n in names:
            a, b = prior_range(env, n)
            if b > a:
                out.append(n)
    return out


def expand_params(
    values: Mapping[str, Any], base: Mapping[str, Any] | None = None, env: gym.Env | None = None
) -> dict[str, Any]:
    """Turn ``{"p[i]": v}`` entries into whole vectors ``{"p": [...]}`` for ``reset``.

    Elements not given come from ``base[p]`` (e.g. fixed params), else from the env's nominal.
    """
    out: dict[str, Any] = {}
    vectors: dict[str, np.ndarray] = {}
    nominal = {p.name: p.nominal for p in env.unwrapped.registry} if env is not None else {}
    for name, v in values.items():
        m = _ELEMENT.match(name)
        if m is None:
            out[name] = v
            continue
        key, i = m["base"], int(m["i"])
        if key not in vectors:
            start = (base or {}).get(key, nominal.get(key))
            if start is None:
                raise ValueError(f"cannot expand {name!r}: no base value for {key!r}")
            vectors[key] = np.array(start, dtype=np.float64, copy=True)
        vectors[key][i] = float(v)
    out.update({k: v.tolist() for k, v in vectors.items()})
    return out


def spec_fragment(refs: Sequence[ParamRef], mean: np.ndarray, cov: np.ndarray) -> dict[str, Any]:
    """The Gaussian as a randomization-spec fragment to merge over the env's spec: a joint
    Gaussian over the scalar params, and per-vector normals (marginals; elements not adapted
    stay at their nominal) for element params (refs from ``param_refs``)."""
    names = [r.name for r in refs]
    scal = [i for i, r in enumerate(refs) if r.index is None]
    out: dict[str, Any] = {}
    if scal:
        out["joint"] = [
            {
                "names": [names[i] for i in scal],
                "mean": [float(mean[i]) for i in scal],
                "cov": np.asarray(cov)[np.ix_(scal, scal)].tolist(),
            }
        ]
    for i, r in enumerate(refs):
        if r.index is None:
            continue
        key = r.param.name
        entry = out.setdefault(
            key,
            {
                "dist": "normal",
                "mean": np.asarray(r.param.nominal, dtype=np.float64).tolist(),
                "std": [0.0] * r.param.shape[0],
            },
        )
        entry["mean"][r.index] = float(mean[i])
        entry["std"][r.index] = float(np.sqrt(cov[i][i]))
    return out
