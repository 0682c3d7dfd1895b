"""The optional vectorized fast path of a task, and per-sim noise drawn in blocks.

``BatchedVectorEnv`` runs any ``SimEnv`` task through its per-sim hooks (the generic path).
A task can also have a ``BatchOps`` class: the same step logic written over ``(num_envs, ...)``
arrays bound to the ``mujoco.batch.Batch``, so a state-observation step costs a few numpy
calls for all sims instead of a Python loop over them. The ops class is found, in order, from
the task class attribute ``batch_ops`` (an ops class or a ``"module:Class"`` string, declared on
the class itself: subclasses do not inherit it), or from ``FAST_PATHS`` below (the tasks of
this repo, whose files this package does not edit).

Contract (all arrays are indexed by ``idx``: ``slice(None)`` for every sim or sorted int ids):

- ``on_reset(ids)``: the tasks ``ids`` were just reset (their own ``reset``: params sampled and
  applied, layout placed, ``mj_forward``) and their state copied into the batch; read the
  per-episode constants the vectorized step needs.
- ``apply_actions(idx, applied)``: the task's ``apply_action`` for the sims ``idx``, writing the
  batch's state fields (``ctrl``, ``xfrc_applied``, ``mocap_pos`` ...) instead of ``MjData``.
- ``evaluate(idx)``: the task's ``evaluate`` after the substeps: ``(reward, terminated, info)``
  with ``info`` a dict of ``(n,)`` arrays (must hold ``is_success``).
- ``state_obs(idx)``: the task's ``state_obs`` (``(n, D)`` float32, before the base's generic
  ``sensor.state`` noise, which the env adds). Task noise comes from ``venv.noise``.
- ``sync_task(i)``: write the vectorized bookkeeping back into task ``i`` (before rendering or a
  ``call``), so the task object describes the sim as the single env would.

Observations must equal the single env's bit for bit (``tests/test_vector.py`` checks it);
rewards may differ in the last bits where the single env sums in another order.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from simenvs.vector.batched import BatchedVectorEnv

__all__ = ["BatchOps", "NormalBuffer", "FAST_PATHS", "find_ops", "Index"]

Index = slice | np.ndarray

# task class (module:qualname) -> its ops class; matched along the task's MRO
FAST_PATHS: dict[str, str] = {
    "simenvs.envs.drone_race.env:DroneRaceEnv": "simenvs.vector.quadrotor:DroneRaceOps",
}


def _load(ref: str | type) -> type:
    if not isinstance(ref, str):
        return ref
    mod, _, name = ref.partition(":")
    return getattr(importlib.import_module(mod), name)


def find_ops(task_cls: type) -> type[BatchOps] | None:
    """The ops class for ``task_cls``: its own ``batch_ops`` attribute, else ``FAST_PATHS``.

    Only the class itself counts, not its bases: a subclass may change the step logic, so it
    gets a fast path only by declaring one.
    """
    ref = task_cls.__dict__.get("batch_ops")
    if ref is None:
        ref = FAST_PATHS.get(f"{task_cls.__module__}:{task_cls.__qualname__}")
    return _load(ref) if ref is not None else None


class BatchOps:
    """Base of a task's vectorized step; see the module docstring for the contract.

    ``steps_finished``: True when the ops may run on sims that finished their episode at the
    last step (NEXT_STEP autoreset), which are reset right after: the env then steps every
    sim with ``idx = slice(None)`` instead of an index array of the others. Such ops must not
    draw noise for the rows ``venv._finishing`` marks (the reset that follows must see the
    task's noise stream where the single env leaves it).
    """

    steps_finished = False
    #: whether ``evaluate`` returns new info arrays (the env may then edit them in place)
    fresh_info = False
    #: whether the ops read derived batch outputs (xmat, actuator_force...) before the first
    #: step after a reset: if not, the reset skips recomputing them (a forward per reset)
    needs_derived = True

    def __init__(self, venv: BatchedVectorEnv):
        self.venv = venv
        self.envs = venv.envs
        self.batch = venv.batch
        self.n = venv.num_envs

    def on_reset(self, ids: Sequence[int]) -> None:
        pass

    def apply_actions(self, idx: Index, applied: np.ndarray) -> None:
        raise NotImplementedError

    def evaluate(self, idx: Index) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def state_obs(self, idx: Index) -> np.ndarray:
        raise NotImplementedError

    def sync_task(self, i: int) -> None:
        pass

    # helpers -------------------------------------------------------------------------
    def rows(self, idx: Index) -> np.ndarray:
        """``idx`` as explicit row numbers."""
        return np.arange(self.n)[idx] if isinstance(idx, slice) else np.asarray(idx)


class NormalBuffer:
    """Standard normals from each sim's own ``streams.noise``, drawn in blocks, consumed in order.

    A ``numpy.random.Generator`` gives the same sequence whether ``standard_normal`` is called
    once for k values or several times for parts of them, so drawing a block per sim and handing
    out slices reproduces the single env's draws exactly while costing one numpy call per block.
    Before anything else draws from a sim's stream (its ``reset``, a render, a ``call``),
    ``rewind(ids)`` puts each generator back right after the values handed out.
    """

    def __init__(self, envs: Sequence[Any], block: int = 1024):
        self.envs = envs
        self.block = int(block)
        n = len(envs)
        self._buf = np.zeros((n, self.block))
        self._pos = np.full(n, self.block, dtype=np.int64)  # next unused value
        self._gen: list[Any] = [None] * n
        self._saved: list[Any] = [None] * n  # generator state when _buf[_fresh] was drawn
        self._fresh = np.zeros(n, dtype=np.int64)

    def take(self, rows: np.ndarray, k: int) -> np.ndarray:
        """``(len(rows), k)`` normals: the next k values of each row's stream."""
        rows = np.asarray(rows)
        if rows.size == 0:
            return np.zeros((0, k))
        if 2 * k >= self.block:
            return self._take_large(rows, k)
        pos = self._pos[rows]
        for i in rows[pos + k > self.block].tolist():
            self._refill(i)
        pos = self._pos[rows]
        out = self._buf[rows[:, None], pos[:, None] + np.arange(k)]
        self._pos[rows] = pos + k
        return out

    def _take_large(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Draws of half a block or more (an IMU noise block), row by row (``_fill_large``)."""
        out = np.empty((len(rows), k))
        for j, i in enumerate(rows.tolist()):
            self._fill_large(i, out[j])
        return out

    def fill(self, i: int, out: np.ndarray) -> None:
        """The next ``len(out)`` values of sim i's stream into ``out`` (1-d, contiguous), as
        ``take([i], len(out))[0]`` gives them, without the copy."""
        if 2 * len(out) >= self.block:
            self._fill_large(i, out)
        else:
            out[:] = self.take(np.array([i]), len(out))[0]

    def _fill_large(self, i: int, out: np.ndarray) -> None:
        """What is buffered, then the rest straight from the generator, which leaves the row's
        buffer empty and its generator right after the values handed out (nothing to rewind).
        Buffering such draws would cost a block refill and a gather per row for each."""
        k, blk = len(out), self.block
        gen = self.envs[i].streams.noise
        p = int(self._pos[i]) if gen is self._gen[i] else blk
        left = blk - p
        if left >= k:
            out[:] = self._buf[i, p : p + k]
            self._pos[i] = p + k
            return
        if left:
            out[:left] = self._buf[i, p:]
        gen.standard_normal(out=out[left:])
        self._gen[i] = self._saved[i] = None
        self._pos[i] = blk

    def _refill(self, i: int) -> None:
        gen = self.envs[i].streams.noise
        if gen is not self._gen[i]:
            self._pos[i] = self.block
        left = self.block - int(self._pos[i])  # < k: consumed by the take that refills
        if left:
            self._buf[i, :left] = self._buf[i, self.block - left :]
        self._gen[i] = gen
        self._saved[i] = gen.bit_generator.state
        self._fresh[i] = left
        self._buf[i, left:] = gen.standard_normal(self.block - left)
        self._pos[i] = 0

    def rewind(self, ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Put generators back right after the values handed out; drop what is buffered."""
        it = range(len(self.envs)) if ids is None else np.asarray(ids).tolist()
        for i in it:
            gen = self._gen[i]
            if gen is not None and gen is self.envs[i].streams.noise:
                gen.bit_generator.state = self._saved[i]
                skip = int(self._pos[i]) - int(self._fresh[i])
                if skip > 0:
                    gen.standard_normal(skip)
            self._gen[i] = self._saved[i] = None
            self._pos[i] = self.block
