"""RandomizationSpec: how each parameter is distributed, as plain, validated data.

A spec maps parameter names (or fnmatch patterns such as ``"appearance.tex.*.pattern"``) to
distributions, plus optional joint Gaussians over named scalars (what SimOpt adapts). It is
env-agnostic until ``bind`` checks it against an env's parameter registry: unknown names,
distributions reaching outside a parameter's physical bounds and wrong shapes are errors
that name the parameter and what is allowed.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from simenvs.randomization.distributions import (
    Categorical,
    Constant,
    Distribution,
    LogUniform,
    MultivariateNormal,
    Normal,
    Uniform,
    distribution_from_dict,
)
from simenvs.randomization.params import ParamDef, check_value

__all__ = ["RandomizationSpec", "BoundSpec"]


@dataclass(frozen=True)
class RandomizationSpec:
    params: dict[str, Distribution] = field(default_factory=dict)
    joint: tuple[MultivariateNormal, ...] = ()

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> RandomizationSpec:
        """``{"name": dist, ..., "joint": [{"names": [...], "mean": [...], "cov": ...}]}``."""
        if d is None:
            return cls()
        if isinstance(d, RandomizationSpec):
            return d
        if not isinstance(d, Mapping):
            raise ValueError(f"a randomization spec must be a mapping, got {type(d).__name__}")
        params: dict[str, Distribution] = {}
        joint: list[MultivariateNormal] = []
        for key, value in d.items():
            if key == "joint":
                items = [value] if isinstance(value, Mapping) else list(value)
                for j in items:
                    j = dict(j)
                    j.pop("dist", None)
                    unknown = set(j) - {"names", "mean", "cov"}
                    if unknown:
                        raise ValueError(f"joint distribution has unknown keys {sorted(unknown)}")
                    joint.append(MultivariateNormal(tuple(j["names"]), j["mean"], j["cov"]))
                continue
            if not isinstance(key, str) or not key:
                raise ValueError(f"parameter names must be non-empty strings, got {key!r}")
            params[key] = distribution_from_dict(value, where=key)
        return cls(params, tuple(joint))

    @classmethod
    def from_yaml(cls, path: str | Path) -> RandomizationSpec:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"randomization spec file not found: {path}")
        with path.open() as f:
            data = yaml.safe_load(f)
        try:
            return cls.from_dict(data or {})
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: v.to_dict() for k, v in self.params.items()}
        if self.joint:
            d["joint"] = [j.to_dict() for j in self.joint]
        return d

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def merged(self, other: RandomizationSpec | Mapping[str, Any]) -> RandomizationSpec:
        """This spec with ``other``'s entries taking precedence (joint names replace singles)."""
        other = RandomizationSpec.from_dict(other)
        params = {**self.params, **other.params}
        joint_names = {n for j in other.joint for n in j.names}
        for n in joint_names:
            params.pop(n, None)
        joint = [j for j in self.joint if not set(j.names) & joint_names] + list(other.joint)
        return RandomizationSpec(params, tuple(joint))

    # ---- binding to an env's registry ---------------------------------------------------
    def bind(self, registry: Sequence[ParamDef]) -> BoundSpec:
        """Resolve patterns against ``registry`` and validate every entry."""
        by_name = {p.name: p for p in registry}
        resolved: dict[str, Distribution] = {}
        # patterns first, exact names override them
        for key in sorted(self.params, key=lambda k: (not _is_pattern(k), k)):
            dist = self.params[key]
            names = (
                [n for n in by_name if fnmatch.fnmatchcase(n, key)] if _is_pattern(key) else [key]
            )
            if not names or (not _is_pattern(key) and key not in by_name):
                raise ValueError(_unknown(key, by_name))
            for n in names:
                _check_dist(by_name[n], dist)
                resolved[n] = dist
        for j in self.joint:
            for n in j.names:
                if n not in by_name:
                    raise ValueError(_unknown(n, by_name))
                p = by_name[n]
                if p.is_categorical or p.shape != ():
                    raise ValueError(f"joint distribution over {n!r}: only scalar numeric params")
                resolved.pop(n, None)
        return BoundSpec(list(registry), resolved, self.joint)


def _is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


def _unknown(key: str, by_name: Mapping[str, ParamDef]) -> str:
    close = difflib.get_close_matches(key, list(by_name), n=3)
    hint = f"; did you mean {close}?" if close else ""
    groups = sorted({n.rsplit(".", 1)[0] + ".*" for n in by_name})
    shown = ", ".join(groups[:40]) + (" ..." if len(groups) > 40 else "")
    return f"unknown randomization parameter {key!r}{hint} Known: {shown}"


def _check_dist(p: ParamDef, dist: Distribution) -> None:
    if p.is_categorical:
        if isinstance(dist, Categorical):
            bad = [c for c in dist.choices if c not in p.choices]
        elif isinstance(dist, Constant):
            bad = [] if dist.value in p.choices else [dist.value]
        else:
            raise ValueError(
                f"{p.name} is categorical (choices {list(p.choices)}); use a categorical or "
                f"constant distribution, not {dist.kind}"
            )
        if bad:
            raise ValueError(f"{p.name}: {bad} not allowed; choices: {list(p.choices)}")
        return
    if isinstance(dist, Constant) and isinstance(dist.value, str):
        raise ValueError(f"{p.name} is numeric; got the string {dist.value!r}")
    if isinstance(dist, Categorical) and not all(
        isinstance(c, (int, float, bool)) for c in dist.choices
    ):
        raise ValueError(f"{p.name} is numeric; categorical choices must be numbers")
    lo, hi = p.bounds()
    try:
        dlo, dhi = (np.broadcast_to(x, p.shape) for x in dist.support())
    except ValueError:
        raise ValueError(
            f"{p.name} has shape {p.shape}; the distribution's shape does not broadcast to it"
        ) from None
    if isinstance(dist, Normal):  # unbounded: its samples are clipped, check the mean only
        m = np.broadcast_to(np.asarray(dist.mean_, float), p.shape)
        dlo = dhi = m
    if np.any(dlo < lo - 1e-12) or np.any(dhi > hi + 1e-12):
        unit = f" {p.unit}" if p.unit else ""
        raise ValueError(
            f"{p.name}: distribution {dist.to_dict()} reaches outside the allowed range "
            f"[{_s(lo)}, {_s(hi)}]{unit}"
        )


def _s(x: np.ndarray) -> Any:
    return x.item() if x.ndim == 0 else x.tolist()


# entry codes of a compiled block (what to do with a drawn slice)
_F, _I, _B, _ARR, _CAT = range(5)


@dataclass
class _Block:
    """A sampling plan for one group's uniform-driven draws (uniform, log-uniform,
    categorical): one ``rng.random`` call per reset; ``BoundSpec._fuse`` joins all groups'
    plans into one affine map, ``exp`` and clip to the parameters' bounds. The spec was
    validated by ``bind``, so its own samples skip ``ParamDef.coerce``; results are
    bit-identical to coercing one by one."""

    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    slices: list[slice] = field(default_factory=list)
    lo: list[np.ndarray] = field(default_factory=list)
    hi: list[np.ndarray] = field(default_factory=list)
    plo: list[np.ndarray] = field(default_factory=list)
    phi: list[np.ndarray] = field(default_factory=list)
    dists: list[Distribution] = field(default_factory=list)
    params: list[ParamDef] = field(default_factory=list)
    size: int = 0

    def add(self, p: ParamDef, dist: Distribution) -> bool:
        shape = p.shape
        if isinstance(dist, (Uniform, LogUniform)):
            n = int(np.prod(shape)) if shape else 1
            lo, hi = (
                np.broadcast_to(np.asarray(x, float), shape).reshape(-1) for x in dist.support()
            )
            if isinstance(dist, LogUniform):
                lo, hi = np.log(lo), np.log(hi)
            plo, phi = (b.reshape(-1) for b in p.bounds())
        elif isinstance(dist, Categorical):
            n, lo, hi = 1, np.zeros(1), np.ones(1)
            plo, phi = np.zeros(1), np.ones(1)  # u itself is in [0, 1): clipping is a no-op
        else:
            return False
        self.names.append(p.name)
        self.kinds.append(dist.kind)
        self.slices.append(slice(self.size, self.size + n))
        self.lo.append(lo)
        self.hi.append(hi)
        self.plo.append(plo)
        self.phi.append(phi)
        self.dists.append(dist)
        self.params.append(p)
        self.size += n
        return True

    def finish(self) -> None:
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
        self._lo = cat(self.lo)
        self._span = cat(self.hi) - self._lo
        self._plo, self._phi = cat(self.plo), cat(self.phi)
        log = [
            np.arange(sl.start, sl.stop)
            for sl, k in zip(self.slices, self.kinds)
            if k == "log_uniform"
        ]
        self._log = np.concatenate(log) if log else None
        plan = []
        for name, kind, sl, d, p in zip(
            self.names, self.kinds, self.slices, self.dists, self.params
        ):
            if kind == "categorical":
                probs = d.probs if d.probs else np.full(len(d.choices), 1 / len(d.choices))
                cum = np.cumsum(probs).tolist()
                # numeric params with a categorical spec are still coerced (float, clip)
                plan.append((name, _CAT, sl.start, (d.choices, cum, len(cum) - 1, p)))
            elif p.shape:
                plan.append((name, _ARR, sl, p))
            else:
                code = _I if p.dtype is int else _B if p.dtype is bool else _F
                plan.append((name, code, sl.start, None))
        self._plan = plan


@dataclass
class BoundSpec:
    """A spec resolved against one registry: one distribution (or none) per parameter.

    Construction compiles a sampling plan (per group: one vectorized uniform block, then the
    few other distributions; constants and nominals precomputed), so ``sample`` does little
    Python work per reset. Only user overrides go through ``check_value``.
    """

    registry: list[ParamDef]
    dists: dict[str, Distribution]
    joint: tuple[MultivariateNormal, ...]

    def __post_init__(self):
        self._by_name = {p.name: p for p in self.registry}
        self._blocks: dict[str, _Block] = {}
        self._others: list[tuple[ParamDef, Distribution]] = []
        fixed: dict[str, Any] = {}  # constants: coerced once
        for p in self.registry:
            dist = self.dists.get(p.name)
            if dist is None:
                continue
            block = self._blocks.setdefault(p.group, _Block())
            if block.add(p, dist):
                continue
            if isinstance(dist, Constant):
                fixed[p.name] = p.coerce(dist.sample(None, p.shape))
            else:
                self._others.append((p, dist))
        for b in self._blocks.values():
            b.finish()
        self._nominal = {
            p.name: (p.nominal if p.is_categorical else p.coerce(p.nominal))
            for p in self.registry
            if p.name not in self.dists
        }
        # every parameter, in registry order, with its nominal/constant value: each sample
        # starts from a shallow copy (array values are copied, see _copy)
        base = {**self._nominal, **fixed}
        self._template = {p.name: base.get(p.name) for p in self.registry}
        self._copy = [k for k, v in base.items() if isinstance(v, np.ndarray)]
        self._groups = [(_stream_of(g), b) for g, b in self._blocks.items() if b.size]
        self._others_s = [(p, d, _stream_of(p.group)) for p, d in self._others]
        self._fuse()

    def _fuse(self) -> None:
        """One plan for all groups' blocks: each stream's uniforms drawn into its part of one
        array, then one affine map, ``exp`` and clip for all of them (each block's own
        arithmetic, element by element, so the same values as block by block)."""
        draws, plan, floats, off = [], [], [], 0
        for stream, b in self._groups:
            draws.append((stream, off, off + b.size))
            for name, code, at, extra in b._plan:
                if code == _ARR:
                    at = slice(at.start + off, at.stop + off)
                    if extra.shape == (at.stop - at.start,) and extra.dtype not in (int, bool):
                        extra = None  # a float vector: the slice has its shape already
                else:
                    at = at + off
                if code == _F:
                    floats.append((name, at))
                else:
                    plan.append((name, code, at, extra))
            off += b.size
        # float parameters: one C-level gather of their values (the keys already exist in
        # the sample's dict, so the order of the writes does not matter)
        self._f_names = [name for name, _ in floats]
        ats = [at for _, at in floats]
        self._f_pick = (
            operator.itemgetter(*ats) if len(ats) > 1
            else (lambda xl, a=ats[0]: (xl[a],)) if ats else (lambda xl: ())
        )  # fmt: skip
        blocks = [b for _, b in self._groups]
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
        self._f_draws, self._f_plan, self._f_size = draws, plan, off
        self._f_lo = cat([b._lo for b in blocks])
        self._f_span = cat([b._span for b in blocks])
        self._f_plo = cat([b._plo for b in blocks])
        self._f_phi = cat([b._phi for b in blocks])
        logs = [b._log + o for (_, o, _), b in zip(draws, blocks) if b._log is not None]
        self._f_log = np.concatenate(logs) if logs else None

    def _draw_blocks(self, streams: Mapping[str, np.random.Generator], out: dict) -> None:
        """Every group's block into ``out`` (see ``_fuse``)."""
        if not self._f_size:
            return
        x = np.empty(self._f_size)  # a new array per sample: array params are views of it
        for stream, a, b in self._f_draws:
            streams[stream].random(out=x[a:b])  # (the values of random(b - a))
        np.multiply(x, self._f_span, out=x)
        np.add(self._f_lo, x, out=x)
        if self._f_log is not None:
            x[self._f_log] = np.exp(x[self._f_log])
        np.maximum(x, self._f_plo, out=x)  # np.clip's min(max(x, lo), hi), without its wrapper
        np.minimum(x, self._f_phi, out=x)
        xl = x.tolist()  # categorical slots hold u itself (0 + u * 1)
        out.update(zip(self._f_names, self._f_pick(xl)))
        for name, code, at, extra in self._f_plan:
            if code == _ARR:
                if extra is None:  # a float vector: the slice itself
                    out[name] = x[at]
                    continue
                v = x[at].reshape(extra.shape)
                if extra.dtype is int:
                    v = np.floor(v + 1e-9).astype(np.int64)
                elif extra.dtype is bool:
                    v = v > 0.5
                out[name] = v
            elif code == _I:
                out[name] = int(math.floor(xl[at] + 1e-9))
            elif code == _B:
                out[name] = xl[at] > 0.5
            else:
                choices, cum, last, p = extra
                v = choices[min(bisect.bisect_right(cum, xl[at]), last)]
                out[name] = v if p.is_categorical else p.coerce(v)

    def sample(
        self,
        streams: Mapping[str, np.random.Generator],
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One value per parameter, each group from its own stream.

        Every parameter's draw is made even when it is overridden, so fixing one value never
        shifts the stream the others are drawn from.
        """
        by_name = self._by_name
        if overrides:
            unknown = [k for k in overrides if k not in by_name]
            if unknown:
                raise ValueError(_unknown(unknown[0], by_name))
        values = self._template.copy()
        for k in self._copy:
            values[k] = values[k].copy()
        for j in self.joint:
            vec = j.sample(streams[_stream_of(by_name[j.names[0]].group)])
            for n, v in zip(j.names, vec):
                values[n] = by_name[n].coerce(v)
        self._draw_blocks(streams, values)
        for p, dist, stream in self._others_s:
            values[p.name] = p.coerce(dist.sample(streams[stream], p.shape))
        if overrides:
            for k, v in overrides.items():
                values[k] = check_value(by_name[k], v)
        return values

    def describe(self) -> dict[str, Any]:
        """Summary for metadata: each randomized parameter's distribution."""
        d = {n: dist.to_dict() for n, dist in self.dists.items()}
        for j in self.joint:
            d["joint:" + ",".join(j.names)] = j.to_dict()
        return d


def _stream_of(group: str) -> str:
    return group
