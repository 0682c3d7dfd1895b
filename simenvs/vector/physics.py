"""Where a batched env's sims are stepped: one ``mujoco.batch.Batch``, or each task's own data.

``SingleBatch``: every sim on one batch (per-sim fields through ``ModelSync``). This is the
fast case and the only one the vectorized ``BatchOps`` path uses.

``DirectPhysics``: each task steps its own ``MjData`` in the calling thread, exactly as the
single env does. Used by the generic path (tasks without ``BatchOps``) when a batch cannot pay:
- one thread: a batch runs nothing in parallel and only adds two state copies per sim and step
  (``mj_getState`` in, ``get_data`` out: ~35 us for a RooftopLanding city, about its physics);
- tasks that recompile their scene per episode with other sizes (Grasp's object sets): sims
  with different ``MjData`` layouts cannot share a batch, and Grasp's layouts are all
  different, so one batch per layout held one sim each (no parallelism) while allocating
  ``num_envs`` sims per layout: 128 Grasp sims ran out of 24 GiB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import mujoco
import numpy as np
from mujoco import batch as mjb

from simenvs.core.env import _BAD_SLICE
from simenvs.vector.model_sync import ModelSync

__all__ = ["SingleBatch", "DirectPhysics"]

_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION


def _fail_ids(call) -> np.ndarray:
    try:
        call()
    except mjb.SimulationError as e:
        return np.asarray(e.ids, dtype=np.int64)
    return np.zeros(0, dtype=np.int64)


class SingleBatch:
    """All sims on one batch."""

    grouped = False
    direct = False

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


class DirectPhysics:
    """No batch: the tasks' own ``MjData`` are the sims, stepped one after another in the
    calling thread exactly as the single env steps them (``SimEnv._integrate``)."""

    grouped = False
    direct = True
    mode = "direct"
    batch = None
    nthread = 1
    persistent = True

    def __init__(self, envs: Sequence[Any]):
        self.envs = envs
        self._errors: dict[int, str] = {}

    def after_reset(self, ids: np.ndarray, models: Sequence[mujoco.MjModel]) -> None:
        pass

    def load(self, ids: np.ndarray, envs: Sequence[Any], reset: bool, forward: bool = True) -> bool:
        return False  # nothing to copy: the task's MjData is the sim

    def advance(self, ids: Sequence[int]) -> set[int]:
        """One control period of tasks ``ids``; the ids whose step raised a MuJoCo error."""
        failed = set()
        for i in ids:
            try:
                self.envs[i]._integrate()
            except mujoco.FatalError as e:
                self._errors[i] = str(e)
                failed.add(i)
        return failed

    def get_data(self, i: int, data: mujoco.MjData) -> None:
        if data is not self.envs[i].data:
            mujoco.mj_copyData(data, self.envs[i].model, self.envs[i].data)

    def warnings(self, ids: Any) -> np.ndarray:
        ids = np.arange(len(self.envs))[ids] if isinstance(ids, slice) else np.asarray(ids)
        return np.array(
            [int(self.envs[i].data.warning.number[_BAD_SLICE].sum()) for i in ids.tolist()],
            dtype=np.int64,
        )

    def error(self, i: int) -> str:
        return self._errors.pop(i, "unknown error")
