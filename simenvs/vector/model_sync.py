"""Keep each batched simulation's model equal to its task's own ``MjModel`` where physics reads it.

Every sim of a ``BatchedVectorEnv`` has a task object whose ``reset`` applies that episode's
parameters to the task's own compiled model, in place (``ParamDef.apply``), exactly as the single
env does. The batch then has to step sim i on the same numbers. Two ways, measured on the
crazyflie model (64 sims, one thread, CPU time):

- ``expand``: the batch's model with per-sim copies of the fields that can differ
  (``Batch.expand``), refreshed from the task's model at each reset. Costs nothing per step
  (0.96-1.03x a bare batch).
- ``models``: ``Batch.set_models`` with the tasks' own models. Exact by construction (the batch
  reads them in place), but ~15 % slower per step; needed when a field ``expand`` cannot hold
  differs (mesh or heightfield data) or when a task recompiles its scene per episode.

Which fields can differ: every physics field that differs between the template and any task's
model after the first reset (layouts, ``reset_task`` edits) is expanded then; the fields each
``ParamDef.apply`` touches (run against a recording proxy of a scratch model) and, when those
are inputs of ``mj_setConst`` (masses, inertias...), the fields it derives from them
(``dof_M0``...), are compared at every reset and expanded when they first differ (a spec that
starts narrow can widen later). Expanded fields cost ~0.5 % per field per step, so only fields
that really vary are expanded. Visual-only fields (materials, lights, cameras, colours,
textures) are never copied: rendering uses the task's own model, and the batched env recomputes
camera and light poses with ``mj_camlight`` on the task's model.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import mujoco
import numpy as np
from mujoco import batch as mjb

__all__ = ["ModelSync", "physics_fields", "applied_fields"]

_VISUAL_PREFIXES = (
    "mat_", "tex_", "light_", "cam_", "skin_", "name_", "names_map", "text_", "key_",
    "geom_rgba", "geom_matid", "geom_group", "geom_castshadow", "site_rgba", "site_matid",
    "site_group", "tendon_rgba", "tendon_matid", "tendon_group", "flex_rgba", "flex_matid",
    "flex_group", "actuator_group", "jnt_group", "numeric_", "tuple_",
)  # fmt: skip
_IGNORED_ATTRS = {"vis", "stat"}  # visual options and statistics: rendering only


def _is_visual(name: str) -> bool:
    return name.startswith(_VISUAL_PREFIXES)


def physics_fields(model: mujoco.MjModel) -> tuple[list[str], list[str]]:
    """(expandable, not expandable) model fields that stepping may read."""
    expandable = sorted(f for f in mjb.MODEL_FIELDS if not _is_visual(f))
    other = sorted(
        n
        for n in dir(model)
        if not n.startswith("_")
        and n not in mjb.MODEL_FIELDS
        and not _is_visual(n)
        and isinstance(getattr(model, n, None), np.ndarray)
    )
    return expandable, other


def _value(model: mujoco.MjModel, field: str) -> np.ndarray:
    if field.startswith("opt."):
        return np.asarray(getattr(model.opt, field[4:]))
    return getattr(model, field)


class _Recorder:
    """Stands in for an MjModel and records which attributes are read or written."""

    def __init__(self, model: mujoco.MjModel):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "names", set())

    def __getattr__(self, name: str) -> Any:
        self.names.add(name)
        return getattr(self._model, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.names.add(name)
        setattr(self._model, name, value)


def applied_fields(model: mujoco.MjModel, registry: Iterable[Any]) -> tuple[set[str], bool]:
    """Model fields the registry's ``apply`` functions touch, and whether all were understood.

    Each apply runs with its nominal value on a scratch copy of ``model``. An apply that fails
    or reaches the model through something other than a field (``m.body("x")``) makes the
    second value False: the caller then compares every field at every reset.
    """
    scratch = copy.copy(model)
    names: set[str] = set()
    ok = True
    for p in registry:
        if p.apply is None:
            continue
        rec = _Recorder(scratch)
        try:
            p.apply(rec, p.nominal)
        except Exception as e:  # noqa: BLE001 - any failure only makes the sync conservative
            warnings.warn(
                f"could not trace {p.name}.apply ({e}); checking all fields", stacklevel=2
            )
            ok = False
        names |= rec.names
    fields: set[str] = set()
    for n in names - _IGNORED_ATTRS:
        if n == "opt":
            fields |= {f for f in mjb.MODEL_FIELDS if f.startswith("opt.")}
        elif isinstance(getattr(model, n, None), np.ndarray):
            if not _is_visual(n):
                fields.add(n)
        else:
            ok = False
    return fields, ok


class ModelSync:
    """Per-sim model fields of a batch, kept equal to the tasks' models (see module doc).

    ``mode``: "auto" decides at the first reset ("models" when a non-expandable field differs or
    the task recompiles per episode, else "expand"); "expand" or "models" force one.
    ``check``: "first" compares every physics field once, at the first reset; "always" at every
    reset (slower; for tasks whose ``reset_task`` writes model fields only in some episodes).
    """

    def __init__(
        self,
        batch: mjb.Batch,
        template: mujoco.MjModel,
        registry: Iterable[Any],
        mode: str = "auto",
        check: str = "first",
        rebuilds: bool = False,
    ):
        if mode not in ("auto", "expand", "models"):
            raise ValueError(f"model_mode must be 'auto', 'expand' or 'models', got {mode!r}")
        if check not in ("first", "always"):
            raise ValueError(f"model_check must be 'first' or 'always', got {check!r}")
        self.batch = batch
        self.template = template
        self.requested = "models" if rebuilds and mode == "auto" else mode
        self.check = check
        self.mode: str | None = None
        self.reason = ""
        self._expandable, self._other = physics_fields(template)
        traced, ok = applied_fields(template, registry)
        if traced & set(getattr(mujoco.MjModel, "_setconst_inputs", ())):
            # a task (or the base) may call mj_setConst after applying them: follow its outputs
            outs = set(getattr(mujoco.MjModel, "_setconst_outputs", ()))
            traced |= {
                f
                for f in outs
                if f in mjb.MODEL_FIELDS
                and not _is_visual(f)
                and _value(template, f).dtype.kind == "f"
                and _value(template, f).size
            }
        self.traced = sorted(traced)
        if not ok:
            self.check = "always"
        self.fields: list[str] = []
        self._watch: list[str] = []
        self._models: list[mujoco.MjModel] = []

    def differing(self, model: mujoco.MjModel) -> tuple[set[str], set[str]]:
        """(expandable, other) physics fields where ``model`` differs from the template."""
        t = self.template
        exp = {f for f in self._expandable if not _equal(_value(model, f), _value(t, f))}
        oth = {f for f in self._other if not _equal(getattr(model, f), getattr(t, f))}
        return exp, oth

    def _decide(self, models: Sequence[mujoco.MjModel]) -> None:
        exp: set[str] = set()
        oth: set[str] = set()
        for m in models:
            _check_sizes(m, self.template)
            e, o = self.differing(m)
            exp |= e
            oth |= o
        mode = self.requested
        if mode == "auto":
            mode = "models" if oth else "expand"
            self.reason = f"fields expand() cannot hold differ: {sorted(oth)}" if oth else ""
        elif mode == "expand" and oth:
            raise RuntimeError(
                f"model_mode='expand' but the tasks' models differ in {sorted(oth)}, which a "
                "batch cannot hold per simulation; use model_mode='models' (or 'auto')"
            )
        self.mode = mode
        self._models = list(models)
        if mode == "models":
            self.batch.set_models(self._models)
            return
        # expanded fields cost a little per step: expand only what differs now, and watch
        # the traced fields at every reset (cheap) to expand them when they first differ
        self._add(exp)
        self._watch = [f for f in self.traced if f not in self.fields and f in mjb.MODEL_FIELDS]

    def _add(self, fields: Iterable[str]) -> None:
        for f in sorted(fields):
            if f not in self.fields and f in mjb.MODEL_FIELDS:
                self.fields.append(f)
                self.batch.expand(f)

    def after_reset(self, ids: Sequence[int], models: Sequence[mujoco.MjModel]) -> None:
        """Make the batch step sims ``ids`` on their tasks' (freshly reset) models."""
        if self.mode is None:
            self._decide(models)
            ids = range(len(models))
        rebuilt = [i for i in ids if models[i] is not self._models[i]]
        for i in rebuilt:
            _check_sizes(models[i], self.template)
            self._models[i] = models[i]
        if self.mode == "models":
            if rebuilt:
                self.batch.set_models(self._models)
            return
        new: set[str] = set()
        if rebuilt or self.check == "always":
            for i in ids:
                exp, oth = self.differing(models[i])
                if oth:
                    raise RuntimeError(
                        f"task {i}'s model now differs in {sorted(oth)}, which a batch cannot "
                        "hold per simulation; create the env with model_mode='models'"
                    )
                new |= exp - set(self.fields)
        elif self._watch:
            # bytes, not np.array_equal (~5 us a field): a NaN with other bits or a -0.0
            # counts as a difference, which only expands a field that could have stayed shared
            tb = self._template_bytes
            for i in ids:
                m = models[i]
                for f, b in tb.items():
                    if _value(m, f).tobytes() != b:
                        new.add(f)
        if new:
            self._add(new)
            self._watch = [f for f in self._watch if f not in self.fields]
            ids = range(len(models))
        targets = self._targets()
        for i in ids.tolist() if isinstance(ids, np.ndarray) else ids:
            m = models[i]
            for f, rows, k, opt in targets:
                v = _value(m, f) if opt else getattr(m, f)
                # bvh_aabb: the batch holds only the bodies' volumes, a prefix of the rows
                rows[i] = v[:k] if k is not None and v.ndim and len(v) != k else v

    def _targets(self) -> list[tuple[str, np.ndarray, int | None, bool]]:
        """(field, its per-sim rows, row length to copy or None, MjOption?) per expanded field,
        cached while the expanded fields stay the same."""
        t = self.__dict__.get("_tg")
        if t is None or len(t) != len(self.fields):
            t = []
            for f in self.fields:
                rows = self.batch.expand(f)
                t.append((f, rows, rows.shape[1] if rows.ndim > 1 else None, f.startswith("opt.")))
            self._tg = t
        return t

    @property
    def _template_bytes(self) -> dict[str, bytes]:
        tb = self.__dict__.get("_tb")
        if tb is None or set(tb) != set(self._watch):
            tb = self._tb = {f: _value(self.template, f).tobytes() for f in self._watch}
        return tb


def _check_sizes(model: mujoco.MjModel, template: mujoco.MjModel) -> None:
    if _sizes(model) != _sizes(template):
        raise RuntimeError(
            "a task compiled a scene with other model sizes (bodies, geoms, dofs...) than the "
            "batch's: every sim of a batched env needs the same layout; use "
            "vectorization_mode='async' for this task"
        )


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _sizes(m: mujoco.MjModel) -> tuple:
    return tuple(
        getattr(m, n)
        for n in ("nq", "nv", "nu", "na", "nbody", "ngeom", "nsite", "nmocap", "neq", "nsensordata")
    )
