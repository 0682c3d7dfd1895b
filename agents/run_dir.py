"""The run folder: one place that knows every file name a training run writes.

Layout (``simenvs train ... --out RUN_DIR``)::

    RUN_DIR/
      config.json          resolved config: env_id, env_kwargs, randomization (+ spec), algo, ...
      model.zip            final SB3 model (``PPO.load`` / ``SAC.load``)
      vecnormalize.pkl     SB3 VecNormalize statistics (only when the config normalizes)
      metrics.json         training summary, evaluation history, final held-out evaluation
      learning_curve.png   training returns + evaluation return / success vs steps
      eval.mp4 | eval.gif  video of the final deterministic policy (when the env renders)
      eval_<tag>.json      reports written by ``simenvs eval``
      tb/                  TensorBoard logs
      checkpoints/step_<N>/{model.zip, vecnormalize.pkl, replay_buffer.pkl, state.json}
      best/                best validation snapshot (with select_best: copied to model.zip
                           when it beats the final policy on the validation seeds)

Every file is written to a temporary name and renamed into place, and a checkpoint is a folder
renamed into place in one step, so a run killed at any moment leaves either the previous or the
new version, never a torn one. ``--resume`` continues from the newest complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RunDir",
    "Checkpoint",
    "atomic_write",
    "write_snapshot",
    "atomic_write_json",
    "read_json",
    "FORMAT",
]

FORMAT = "simenvs-run/1"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    raise TypeError(f"cannot write {type(obj).__name__} to JSON: {obj!r}")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint folder (only complete ones are ever visible under their final name)."""

    path: Path
    num_timesteps: int

    @property
    def model(self) -> Path:
        return self.path / "model.zip"

    @property
    def vecnormalize(self) -> Path | None:
        p = self.path / "vecnormalize.pkl"
        return p if p.exists() else None

    @property
    def replay_buffer(self) -> Path | None:
        p = self.path / "replay_buffer.pkl"
        return p if p.exists() else None

    def state(self) -> dict[str, Any]:
        return read_json(self.path / "state.json")


class RunDir:
    """Paths and atomic I/O for one run folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    config = property(lambda self: self.root / "config.json")
    model = property(lambda self: self.root / "model.zip")
    vecnormalize = property(lambda self: self.root / "vecnormalize.pkl")
    metrics = property(lambda self: self.root / "metrics.json")
    learning_curve = property(lambda self: self.root / "learning_curve.png")
    tensorboard = property(lambda self: self.root / "tb")
    checkpoints = property(lambda self: self.root / "checkpoints")

    def video(self, ext: str = "mp4") -> Path:
        return self.root / f"eval.{ext}"

    def existing_video(self) -> Path | None:
        for ext in ("mp4", "gif"):
            if self.video(ext).exists():
                return self.video(ext)
        return None

    def eval_report(self, tag: str) -> Path:
        return self.root / f"eval_{tag}.json"

    def is_run(self) -> bool:
        return self.config.exists()

    def read_config(self) -> dict[str, Any]:
        if not self.config.exists():
            raise FileNotFoundError(
                f"{self.root} is not a simenvs run folder (no config.json); "
                "pass the --out folder of a `simenvs train` run"
            )
        return read_json(self.config)

    # ---- checkpoints ------------------------------------------------------------------------
    def list_checkpoints(self) -> list[Checkpoint]:
        if not self.checkpoints.is_dir():
            return []
        found = []
        for p in self.checkpoints.iterdir():
            if p.is_dir() and p.name.startswith("step_") and (p / "state.json").exists():
                try:
                    found.append(Checkpoint(p, int(p.name[5:])))
                except ValueError:
                    continue
        return sorted(found, key=lambda c: c.num_timesteps)

    def latest_checkpoint(self) -> Checkpoint | None:
        cps = self.list_checkpoints()
        return cps[-1] if cps else None

    def save_checkpoint(self, model: Any, state: dict[str, Any], keep: int = 2) -> Checkpoint:
        """Write model (+ VecNormalize, + replay buffer for off-policy algos) and ``state``.

        The folder is assembled under a temporary name and renamed into place, so a kill at
        any moment leaves the previous checkpoint intact. Only the ``keep`` newest are kept.
        """
        steps = int(model.num_timesteps)
        final = self.checkpoints / f"step_{steps:012d}"
        write_snapshot(model, final, state, replay_buffer=True)
        for old in self.list_checkpoints()[:-keep] if keep > 0 else []:
            shutil.rmtree(old.path, ignore_errors=True)
        return Checkpoint(final, steps)

    @property
    def best(self) -> Path:
        """Snapshot (model, VecNormalize, state.json) with the best validation score so far."""
        return self.root / "best"

    def save_best(self, model: Any, state: dict[str, Any]) -> Path:
        return write_snapshot(model, self.best, state, replay_buffer=False)

    def save_final(self, model: Any) -> None:
        """Write ``model.zip`` and ``vecnormalize.pkl`` at the top of the run folder."""

        def write_model(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                model.save(f)

        atomic_write(self.model, write_model)
        vn = model.get_vec_normalize_env()
        if vn is not None:
            atomic_write(self.vecnormalize, lambda tmp: vn.save(str(tmp)))


def write_snapshot(
    model: Any, folder: Path, state: dict[str, Any], replay_buffer: bool = True
) -> Path:
    """Assemble model.zip, vecnormalize.pkl, (replay_buffer.pkl), state.json in a temporary
    folder next to ``folder`` and rename it into place (replacing an older one)."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with open(tmp / "model.zip", "wb") as f:
            model.save(f)
        vn = model.get_vec_normalize_env()
        if vn is not None:
            vn.save(str(tmp / "vecnormalize.pkl"))
        off_policy = isinstance(model, OffPolicyAlgorithm)
        if replay_buffer and off_policy and model.replay_buffer is not None:
            model.save_replay_buffer(tmp / "replay_buffer.pkl")
        steps = int(model.num_timesteps)
        (tmp / "state.json").write_text(
            json.dumps({**state, "num_timesteps": steps}, default=_json_default)
        )
        for p in tmp.iterdir():
            _fsync_file(p)
        if folder.exists():  # replace: the old one is moved aside first, then dropped
            old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
