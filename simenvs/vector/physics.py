"""Where a batched env's sims are stepped: one ``mujoco.batch.Batch``, or one per model layout.

``SingleBatch``: every sim on one batch (per-sim fields through ``ModelSync``). This is the
fast case and the only one the vectorized ``BatchOps`` path uses.

``LayoutGroups``: for tasks that recompile their scene per episode with *other sizes* (Grasp's
object sets change the number of geoms), sims are grouped by model layout; each group is a
persistent batch running the tasks' own models (``set_models``), stepped with one call per
group. A sim moves to another group when its task recompiles. Same results, fewer sims per
call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import mujoco
import numpy as np
from mujoco import batch as mjb

from simenvs.core.env import _BAD_SLICE
from simenvs.vector.model_sync import ModelSync

__all__ = ["SingleBatch", "LayoutGroups", "layout_key"]

_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION
_DATA_SIZES = (
    "nq", "nv", "nu", "na", "nbody", "njnt", "ngeom", "nsite", "ncam", "nlight", "nflex",
    "nflexnode", "nflexvert", "nflexedge", "nflexelem", "ntendon", "nwrap", "nsensor",
    "nsensordata", "nmocap", "neq", "nuserdata", "nplugin", "npluginstate", "nhistory", "nbvh",
    "nbvhdynamic", "ntree", "nM", "nB", "nC", "nD", "narena", "nJmom", "nJten", "nplastic",
)  # fmt: skip


def layout_key(model: mujoco.MjModel) -> tuple[int, ...]:
    """Sizes that shape an MjData: models with equal keys can share a batch."""
    return tuple(int(getattr(model, n, 0)) for n in _DATA_SIZES)


def _fail_ids(call) -> np.ndarray:
    try:
        call()
    except mjb.SimulationError as e:
        return np.asarray(e.ids, dtype=np.int64)
    return np.zeros(0, dtype=np.int64)


class SingleBatch:
    """All sims on one batch."""

    grouped = False

    def __init__(
        self,
        template: mujoco.MjModel,
        n: int,
        nthread: int,
        persistent: bool,
        registry: Iterable[Any],
        model_mode: str,
        model_check: str,
    ):
        try:
            self.batch = mjb.Batch(template, n, nthread, persistent)
        except ValueError:  # sleep / IPC models keep bookkeeping outside the state rows
            self.batch = mjb.Batch(template, n, nthread, True)
        self.persistent = self.batch.persistent
        self.nthread = self.batch.nthread
        self.sync = ModelSync(self.batch, template, registry, mode=model_mode, check=model_check)

    @property
    def mode(self) -> str:
        return self.sync.mode or "undecided"

    def after_reset(self, ids: np.ndarray, models: Sequence[mujoco.MjModel]) -> None:
        self.sync.after_reset(ids, models)

    def row(self, i: int) -> np.ndarray:
        return self.batch.state[i]

    def load(self, ids: np.ndarray, envs: Sequence[Any], reset: bool, forward: bool = True) -> bool:
        """Copy the tasks' MjData state into rows ``ids``; derived fields recomputed (unless
        ``forward`` is False: then they stay stale until the next step, which a batch that
        is not persistent computes from the state rows alone). Without ``reset`` only
        changed rows are written (and recomputed). Returns whether a forward ran (with
        ``reset``, the rows' warning counters are zero otherwise)."""
        if self.persistent:
            forward = True  # the sims' own MjData must describe the loaded state
        b = self.batch
        if reset:
            if self.persistent:  # the sims' own MjData: reset them
                b.reset(ids.astype(np.int32), stage=mujoco.mjtStage.mjSTAGE_NONE)
            else:  # the row is the whole sim, overwritten below: only clear its warnings
                b.warning[ids] = 0  # (Batch.reset does both, at ~40 us a call)
        state = b.state
        changed = []
        buf = None if reset else np.empty(state.shape[1])
        for i in ids.tolist():
            e = envs[i]
            if reset:
                mujoco.mj_getState(e.model, e.data, state[i], _INTEGRATION)
                continue
            mujoco.mj_getState(e.model, e.data, buf, _INTEGRATION)
            if not np.array_equal(buf, state[i]):
                state[i] = buf
                changed.append(i)
        fwd = ids if reset else np.asarray(changed, dtype=np.int64)
        if fwd.size and forward:
            b.forward(fwd.astype(np.int32))
            return True
        return False

    def step(self, ids: np.ndarray | None, nstep: int) -> np.ndarray:
        ids32 = None if ids is None else ids.astype(np.int32)
        return _fail_ids(lambda: self.batch.step(ids32, nstep=nstep))

    def get_data(self, i: int, data: mujoco.MjData) -> None:
        self.batch.get_data(i, data)

    def warnings(self, ids: Any) -> np.ndarray:
        w = self.batch.warning[ids]
        return w[:, _BAD_SLICE, 1].sum(axis=1)

    def error(self, i: int) -> str:
        return self.batch.error(i)


class LayoutGroups:
    """Sims grouped by model layout, one persistent batch (caller models) per group."""

    grouped = True
    mode = "models-per-layout"

    def __init__(self, n: int, nthread: int):
        self.n = n
        self.nthread = nthread
        self.batch = None
        self._groups: dict[tuple, tuple[mjb.Batch, list[mujoco.MjModel]]] = {}
        self._key: list[tuple | None] = [None] * n

    def _group(self, key: tuple, model: mujoco.MjModel) -> tuple[mjb.Batch, list]:
        if key not in self._groups:
            b = mjb.Batch(model, self.n, self.nthread, persistent=True)
            self._groups[key] = (b, [model] * self.n)
        return self._groups[key]

    def after_reset(self, ids: np.ndarray, models: Sequence[mujoco.MjModel]) -> None:
        touched: set[tuple] = set()
        for i in ids.tolist():
            key = layout_key(models[i])
            b, lst = self._group(key, models[i])
            if lst[i] is not models[i] or self._key[i] != key:
                lst[i] = models[i]
                touched.add(key)
            self._key[i] = key
        for key in touched:
            b, lst = self._groups[key]
            try:
                b.set_models(lst)
            except Exception as e:  # a layout the key did not capture
                raise RuntimeError(
                    f"tasks recompiled models whose MjData layouts differ in a way the batch "
                    f"cannot group ({e}); use vectorization_mode='async' for this task"
                ) from e

    @property
    def groups(self) -> int:
        return len({k for k in self._key if k is not None})

    def _batch_of(self, i: int) -> mjb.Batch:
        return self._groups[self._key[i]][0]

    def row(self, i: int) -> np.ndarray:
        return self._batch_of(i).state[i]

    def load(self, ids: np.ndarray, envs: Sequence[Any], reset: bool, forward: bool = True) -> bool:
        for key, idx in self._by_group(ids):  # persistent batches: always forward
            b = self._groups[key][0]
            if reset:
                b.reset(idx.astype(np.int32), stage=mujoco.mjtStage.mjSTAGE_NONE)
            for i in idx.tolist():
                e = envs[i]
                mujoco.mj_getState(e.model, e.data, b.state[i], _INTEGRATION)
            b.forward(idx.astype(np.int32))
        return True

    def _by_group(self, ids: np.ndarray | None) -> list[tuple[tuple, np.ndarray]]:
        ids = np.arange(self.n) if ids is None else np.asarray(ids)
        out: dict[tuple, list[int]] = {}
        for i in ids.tolist():
            out.setdefault(self._key[i], []).append(i)
        return [(k, np.asarray(v, dtype=np.int64)) for k, v in out.items()]

    def step(self, ids: np.ndarray | None, nstep: int) -> np.ndarray:
        failed = [np.zeros(0, dtype=np.int64)]
        for key, idx in self._by_group(ids):
            b = self._groups[key][0]
            failed.append(_fail_ids(lambda b=b, idx=idx: b.step(idx.astype(np.int32), nstep)))
        return np.concatenate(failed)

    def get_data(self, i: int, data: mujoco.MjData) -> None:
        self._batch_of(i).get_data(i, data)

    def warnings(self, ids: Any) -> np.ndarray:
        ids = np.arange(self.n)[ids] if isinstance(ids, slice) else np.asarray(ids)
        return np.array(
            [int(self._batch_of(i).warning[i, _BAD_SLICE, 1].sum()) for i in ids.tolist()],
            dtype=np.int64,
        )

    def error(self, i: int) -> str:
        return self._batch_of(i).error(i)
