"""Where a batched env's sims are stepped: one ``mujoco.batch.Batch``, or each task's own data.

``SingleBatch``: every sim on one batch (per-sim fields through ``ModelSync``). This is the
fast case and the only one the vectorized ``BatchOps`` path uses.

``DirectPhysics``: each task steps its own ``MjData`` in the calling thread, exactly as the
single env does: the generic path (tasks without ``BatchOps``, and every image observation).
There the task's Python per sim dominates, and a batch would cost more than it gives:
- its threads parallelize only the physics (~35 us of a RooftopLanding sim's ~100 us step),
  while the state copies in and out (``mj_getState``, ``get_data``) cost ~13 us per sim and
  step on their own (CPU-time, warm caches). Measured on a quiet 2-core machine, 32 sims,
  interleaved: RooftopLanding 6,712 env steps/s on a 2-thread batch, 7,373 stepped directly
  (Grasp 1,561 and 1,709). Two worker processes (``async-pool``) nearly double it instead;
- tasks that recompile their scene per episode with other sizes (Grasp's object sets) cannot
  share a batch at all: Grasp's layouts are all different, and the one-batch-per-layout
  scheme this replaced held one sim per batch while allocating ``num_envs`` sims for each
  (128 Grasp sims ran out of 24 GiB).
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

    mode = "direct"
    batch = None
    nthread = 1
    persistent = True

    def __init__(self, envs: Sequence[Any]):
        self.envs = envs

    def after_reset(self, ids: np.ndarray, models: Sequence[mujoco.MjModel]) -> None:
        pass

    def load(self, ids: np.ndarray, envs: Sequence[Any], reset: bool, forward: bool = True) -> bool:
        return False  # nothing to copy: the task's MjData is the sim

    def advance(self, i: int) -> str | None:
        """One control period of task ``i``: None, or the MuJoCo error its step raised."""
        try:
            self.envs[i]._integrate()
        except mujoco.FatalError as e:
            return str(e)
        return None
