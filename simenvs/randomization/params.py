"""What can be randomized: parameter definitions, declared by tasks and the base env.

A ``ParamDef`` says what a parameter is (name, nominal value, physical bounds, shape, unit)
and how it reaches the simulation (``apply(model, value)``, in place). The
``RandomizationSpec`` says how it is distributed; the two meet in ``sample_params``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GROUPS = ("layout", "appearance", "dynamics", "sensor")

__all__ = ["GROUPS", "ParamDef", "scale_param", "check_value"]


@dataclass(frozen=True)
class ParamDef:
    """One randomizable quantity.

    ``name`` is ``"<group>.<rest>"`` with group in ``GROUPS``. Numeric params have bounds
    (``low``/``high``, broadcast to ``shape``); categorical ones have ``choices``. ``apply``
    writes the value into model fields in place; params without it are read by the task
    from ``env.params`` (wind, latency, noise levels).
    """

    name: str
    nominal: Any
    low: Any = None
    high: Any = None
    shape: tuple[int, ...] = ()
    choices: tuple | None = None
    dtype: type = float
    unit: str = ""
    doc: str = ""
    apply: Callable[[Any, Any], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        group = self.name.split(".", 1)[0]
        if group not in GROUPS or "." not in self.name:
            raise ValueError(f"parameter name {self.name!r} must start with one of {GROUPS}")
        object.__setattr__(self, "shape", tuple(self.shape))
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        elif self.low is None or self.high is None:
            raise ValueError(f"parameter {self.name!r} needs low/high bounds or choices")
        else:  # cached: sampling runs every reset (and tasks that rebuild declare anew)
            lo, hi = _bound(self.low, self.shape), _bound(self.high, self.shape)
            if lo > hi if lo.ndim == 0 else np.any(lo > hi):
                raise ValueError(f"parameter {self.name!r}: low {self.low!r} > high {self.high!r}")
            object.__setattr__(self, "_lo", lo)
            object.__setattr__(self, "_hi", hi)

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def is_categorical(self) -> bool:
        return self.choices is not None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lo, self._hi

    def signature(self) -> tuple:
        """What sampling depends on (name, shape, choices, dtype, bounds), as a hashable key;
        computed once per definition (rebinding compares it after every recompile)."""
        sig = self.__dict__.get("_sig")
        if sig is None:
            sig = (self.name, self.shape, self.choices, self.dtype)
            if not self.is_categorical:
                sig += (self._lo.tobytes(), self._hi.tobytes())
            object.__setattr__(self, "_sig", sig)
        return sig

    def with_apply(self, apply: Callable[[Any, Any], None] | None) -> ParamDef:
        """This definition with another ``apply`` (a recompiled model's ids and nominals),
        without re-validating the rest: a copy costs ~1 us, a new definition ~20 us."""
        new = object.__new__(ParamDef)
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "apply", apply)
        return new

    def coerce(self, value: Any) -> Any:
        """Clip a sampled numeric value to bounds and give it the declared type and shape."""
        if self.is_categorical:
            return value
        lo, hi = self._lo, self._hi
        if self.shape == ():
            v = min(max(float(value), float(lo)), float(hi))
            if self.dtype is int:
                return int(np.floor(v + 1e-9))
            return v > 0.5 if self.dtype is bool else v
        arr = np.clip(np.broadcast_to(np.asarray(value, float), self.shape), lo, hi)
        if self.dtype is int:
            arr = np.floor(arr + 1e-9).astype(np.int64)
        elif self.dtype is bool:
            arr = arr > 0.5
        if self.shape == ():
            return arr.item()
        return arr.copy()


def _bound(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a float array of ``shape`` (a fresh copy); scalars skip ``broadcast_to``."""
    if isinstance(x, (int, float)):
        return np.array(float(x)) if shape == () else np.full(shape, float(x))
    return np.broadcast_to(np.asarray(x, float), shape).copy()


def check_value(p: ParamDef, value: Any) -> Any:
    """Validate a user-given value for ``p`` (overrides): right shape, inside bounds."""
    if p.is_categorical:
        if value not in p.choices:
            raise ValueError(f"{p.name}={value!r} is not allowed; choices: {list(p.choices)}")
        return value
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{p.name}={value!r} must be numeric with shape {p.shape}") from None
    if arr.shape != p.shape and not (arr.ndim == 0 and p.shape == ()):
        raise ValueError(f"{p.name} must have shape {p.shape}, got {arr.shape} ({value!r})")
    lo, hi = p.bounds()
    if not np.all(np.isfinite(arr)) or np.any(arr < lo - 1e-12) or np.any(arr > hi + 1e-12):
        raise ValueError(
            f"{p.name}={value!r} is outside its bounds [{_fmt(lo)}, {_fmt(hi)}]"
            + (f" {p.unit}" if p.unit else "")
        )
    return p.coerce(arr)


def _fmt(x: np.ndarray) -> str:
    return str(x.item()) if x.ndim == 0 else str(x.tolist())


def scale_param(
    name: str,
    model: Any,
    field_name: str,
    ids: Sequence[int] | np.ndarray,
    low: float = 0.1,
    high: float = 10.0,
    columns: Sequence[int] | slice | None = None,
    also: Sequence[str] = (),
    doc: str = "",
) -> ParamDef:
    """A multiplicative scale on ``model.<field_name>[ids, columns]`` relative to its nominal.

    ``also`` names fields scaled together (``body_inertia`` with ``body_mass``). The nominal
    values are captured now, from the freshly compiled model, so repeated resets never
    compound.
    """
    ids = np.asarray(ids, dtype=np.int64)
    cols = slice(None) if columns is None else columns
    fields = (field_name, *also)
    nominal = {f: np.array(getattr(model, f)[ids], copy=True) for f in fields}

    def apply(m: Any, value: float) -> None:
        for f in fields:
            arr = getattr(m, f)
            if f == field_name and columns is not None:
                arr[ids[:, None], cols] = nominal[f][:, cols] * value
            else:
                arr[ids] = nominal[f] * value

    return ParamDef(
        name,
        1.0,
        low,
        high,
        unit="x",
        doc=doc or f"scale of {field_name} for {len(ids)} element(s)",
        apply=apply,
    )
