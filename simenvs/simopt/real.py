"""Where real rollouts come from: recorded files, a hardware callback, or a stand-in reality.

A ``RealSystem`` runs (or looks up) ``n_episodes`` of the current policy and returns them as
``Rollouts``. Stand-in realities (``simenvs.reality``) also expose ``truth``, the hidden
parameter values, which SimOpt uses only for plots and error reports, never for fitting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from simenvs.data import Rollouts, load_rollouts

from .rollout import PolicyFactory

__all__ = ["RealSystem", "FileReality", "CallbackReality"]


class RealSystem(Protocol):
    name: str
    truth: dict[str, Any] | None

    def collect(
        self, policy: PolicyFactory | None, n_episodes: int, *, iteration: int, seed: int
    ) -> Rollouts: ...


class FileReality:
    """Recorded rollout files: iteration i reads ``paths[i]`` (the last file once they run out).

    Files cannot run a new policy; SimOpt then adapts to logs recorded with whatever policy
    produced them (for closed-loop comparison the same policy must drive the simulation).
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike]):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("FileReality needs at least one rollout file")
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"rollout file(s) not found: {missing}")
        self.name = "file:" + ",".join(p.name for p in self.paths)
        self.truth = None

    def collect(self, policy, n_episodes, *, iteration, seed) -> Rollouts:
        r = load_rollouts(self.paths[min(iteration, len(self.paths) - 1)])
        if n_episodes and len(r.episodes) > n_episodes:
            r.episodes = r.episodes[:n_episodes]
        return r


class CallbackReality:
    """A hardware hook: ``fn(policy_factory, n_episodes, iteration, seed)`` returns ``Rollouts``
    or the path of a rollout file it wrote (e.g. through ``RolloutRecorder`` on the robot)."""

    def __init__(
        self,
        fn: Callable[..., Rollouts | str | os.PathLike],
        name: str = "hardware",
        truth: dict[str, Any] | None = None,
    ):
        self.fn, self.name, self.truth = fn, name, truth

    def collect(self, policy, n_episodes, *, iteration, seed) -> Rollouts:
        out = self.fn(policy, n_episodes, iteration, seed)
        if isinstance(out, (str, os.PathLike)):
            out = load_rollouts(out)
        if not isinstance(out, Rollouts):
            raise TypeError(
                "the hardware callback must return Rollouts or a file path, "
                f"got {type(out).__name__}"
            )
        out.validate(where=f"{self.name} rollouts")
        return out
