"""Evaluate a trained policy: success rate with a 95 % CI, returns, lengths, failure modes.

``simenvs eval RUN_DIR --episodes 100 [--randomization none|default|wide|FILE]
[--object-set test] [--video]`` rebuilds the env from the run's ``config.json``, loads
``model.zip`` and the VecNormalize statistics, and runs episodes with fixed, held-out seeds
(episode k uses seed ``seed + k``), so two evaluations of one run are comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .cli_args import add_eval_arguments
from .config import TrainConfig, load_mapping_file, resolve_device
from .media import write_video
from .run_dir import RunDir, atomic_write_json
from .stats import wilson_interval
from .vec import make_env

__all__ = [
    "EVAL_SEED",
    "VALIDATION_SEED",
    "EpisodeRecord",
    "EvalReport",
    "run_episodes",
    "policy_fn",
    "load_policy",
    "load_policy_files",
    "evaluate_run",
    "held_out_kwarg",
    "add_eval_arguments",
    "eval_command",
    "main",
]

# Episode seeds. Training envs are seeded seed..seed+n_envs-1 and advance from there; the
# periodic evaluations during training (model selection, curves) use VALIDATION_SEED+k; final
# reports and `simenvs eval` use EVAL_SEED+k, never seen while training or selecting.
VALIDATION_SEED = 500_000
EVAL_SEED = 1_000_000
_NOT_FAILURES = {"is_success", "TimeLimit.truncated"}


@dataclass
class EpisodeRecord:
    seed: int
    ret: float
    length: int
    success: bool | None
    terminated: bool
    truncated: bool
    failures: list[str] = field(default_factory=list)


@dataclass
class EvalReport:
    """Aggregate of one evaluation; ``to_dict`` is what ``eval_<tag>.json`` holds."""

    episodes: int
    mean_return: float
    std_return: float
    mean_length: float
    success_rate: float | None
    success_ci95: tuple[float, float] | None
    successes: int | None
    failure_counts: dict[str, int]
    seed: int
    deterministic: bool = True
    records: list[EpisodeRecord] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_records(
        cls, records: Sequence[EpisodeRecord], seed: int, deterministic: bool = True
    ) -> EvalReport:
        rets = np.array([r.ret for r in records], dtype=float)
        lens = np.array([r.length for r in records], dtype=float)
        flags = [r.success for r in records if r.success is not None]
        successes = int(sum(flags)) if flags else None
        counts = Counter(f for r in records for f in r.failures)
        return cls(
            episodes=len(records),
            mean_return=float(rets.mean()) if len(rets) else math.nan,
            std_return=float(rets.std()) if len(rets) else math.nan,
            mean_length=float(lens.mean()) if len(lens) else math.nan,
            success_rate=(successes / len(flags)) if flags else None,
            success_ci95=wilson_interval(successes, len(flags)) if flags else None,
            successes=successes,
            failure_counts=dict(sorted(counts.items())),
            seed=seed,
            deterministic=deterministic,
            records=list(records),
        )

    def to_dict(self, with_episodes: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d.pop("records")
        d.update(d.pop("extra"))
        if with_episodes:
            d["per_episode"] = [asdict(r) for r in self.records]
        return d

    def summary(self) -> str:
        lines = [f"episodes        {self.episodes}"]
        if self.success_rate is not None:
            lo, hi = self.success_ci95
            lines.append(
                f"success         {100 * self.success_rate:.1f} %  "
                f"(95 % CI {100 * lo:.1f}-{100 * hi:.1f} %, {self.successes}/{self.episodes})"
            )
        lines.append(f"return          {self.mean_return:.2f} +/- {self.std_return:.2f}")
        lines.append(f"episode length  {self.mean_length:.1f}")
        if self.failure_counts:
            fc = ", ".join(f"{k}: {v}" for k, v in self.failure_counts.items())
            lines.append(f"failure modes   {fc}")
        return "\n".join(lines)


_FAILURE_WORDS = ("crash", "collision", "lost", "out_of_bounds", "physics_error", "fail", "drop")


def _failure_flags(info: dict[str, Any], truncated: bool, success: bool | None) -> list[str]:
    """Failure modes of a finished episode, from the env's final ``info``.

    In order of preference: ``info["failure"]`` (a mode name or list of names, e.g.
    RooftopLanding's "obstacle"), ``info["crash_reason"]`` (DroneRace), then boolean flags
    whose names say failure (``crashed``, ``objects_lost``, ``physics_error``...). An env that
    reports success but ran out of time without it counts as ``timeout``.
    """
    modes: list[str] = []
    declared = info.get("failure")
    if isinstance(declared, str) and declared:
        modes.append(declared)
    elif isinstance(declared, (list, tuple)):
        modes.extend(str(m) for m in declared if m)
    reason = info.get("crash_reason")
    if isinstance(reason, str) and reason and reason not in modes:
        modes.append(reason)
    for k, v in info.items():
        if k in _NOT_FAILURES or k.startswith("_") or not isinstance(v, (bool, np.bool_)):
            continue
        if v and any(w in k.lower() for w in _FAILURE_WORDS):
            if k == "crashed" and modes:  # already named by failure / crash_reason
                continue
            modes.append(k)
    if truncated and success is False and not modes:
        modes.append("timeout")
    return sorted(set(modes))


def _stack(obs: Sequence[Any]) -> Any:
    if isinstance(obs[0], dict):
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    return np.stack(obs)


def run_episodes(
    envs: Sequence[gym.Env],
    act: Callable[[Any], np.ndarray],
    n_episodes: int,
    seed: int = EVAL_SEED,
    frames: list[np.ndarray] | None = None,
    video_episodes: int = 1,
) -> list[EpisodeRecord]:
    """Run ``n_episodes`` across ``envs`` in lock-step, one batched ``act`` call per step.

    Episode k runs on env ``k % len(envs)`` with ``reset(seed=seed + k)``, so results do not
    depend on the number of envs. If ``frames`` is a list, env 0's first ``video_episodes``
    episodes are rendered into it (env 0 must have ``render_mode="rgb_array"``).
    """
    n = len(envs)
    queues = [list(range(i, n_episodes, n)) for i in range(n)]
    records: dict[int, EpisodeRecord] = {}
    current: list[int | None] = [None] * n
    obs: list[Any] = [None] * n
    ret = np.zeros(n)
    length = np.zeros(n, dtype=int)
    filmed = 0

    def start(i: int) -> None:
        nonlocal filmed
        if not queues[i]:
            current[i] = None
            return
        k = queues[i].pop(0)
        current[i] = k
        obs[i], _ = envs[i].reset(seed=seed + k)
        ret[i] = 0.0
        length[i] = 0
        if frames is not None and i == 0 and filmed < video_episodes:
            frames.append(envs[0].render())

    for i in range(n):
        start(i)
    while any(c is not None for c in current):
        active = [i for i in range(n) if current[i] is not None]
        actions = act(_stack([obs[i] for i in active]))
        for j, i in enumerate(active):
            o, r, term, trunc, info = envs[i].step(actions[j])
            obs[i] = o
            ret[i] += float(r)
            length[i] += 1
            if frames is not None and i == 0 and filmed < video_episodes:
                frames.append(envs[0].render())
            if term or trunc:
                success = info.get("is_success")
                success = None if success is None else bool(success)
                k = current[i]
                records[k] = EpisodeRecord(
                    seed=seed + k,
                    ret=float(ret[i]),
                    length=int(length[i]),
                    success=success,
                    terminated=bool(term),
                    truncated=bool(trunc),
                    failures=_failure_flags(info, bool(trunc), success),
                )
                if i == 0:
                    filmed += 1
                start(i)
    return [records[k] for k in sorted(records)]


def policy_fn(model: Any, vecnormalize: Any = None, deterministic: bool = True) -> Callable:
    """Batched ``obs -> action`` using SB3's predict (which clips/unscales actions and
    transposes HWC images) after the run's observation normalization."""

    def act(obs: Any) -> np.ndarray:
        if vecnormalize is not None:
            obs = vecnormalize.normalize_obs(obs)
        action, _ = model.predict(obs, deterministic=deterministic)
        return action

    return act


_CUSTOM_OBJECTS = {  # schedules are not needed to act; avoids unpickling training closures
    "learning_rate": 0.0,
    "lr_schedule": lambda _: 0.0,
    "clip_range": lambda _: 0.0,
}


def load_policy(run: RunDir | str | Path, device: str = "auto") -> tuple[Any, Any, TrainConfig]:
    """(model, VecNormalize statistics or None, TrainConfig) from a run folder."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    cfg = TrainConfig.from_dict(run.read_config())
    if not run.model.exists():
        raise FileNotFoundError(f"{run.model} not found: the run has not finished training")
    model, vn = load_policy_files(cfg.algo, run.model, run.vecnormalize, device)
    return model, vn, cfg


def load_policy_files(
    algo: str, model_path: Path, vecnormalize_path: Path | None, device: str = "auto"
) -> tuple[Any, Any]:
    """(model, VecNormalize or None) from a model.zip and an optional vecnormalize.pkl."""
    from stable_baselines3 import PPO, SAC

    cls = {"ppo": PPO, "sac": SAC}[algo]
    model = cls.load(model_path, device=resolve_device(device), custom_objects=_CUSTOM_OBJECTS)
    vn = None
    if vecnormalize_path is not None and Path(vecnormalize_path).exists():
        # SB3's own format (a pickle this run wrote); VecNormalize.load would need a venv
        with open(vecnormalize_path, "rb") as f:
            vn = pickle.load(f)
        vn.training = False
    return model, vn


_SPLIT_KWARGS = ("object_set", "gate_textures", "texture_set")


def held_out_kwarg(env_id: str) -> str:
    """The env kwarg that picks a train/test split: Grasp's ``object_set``, DroneRace's
    ``gate_textures``... (``--object-set test`` sets it)."""
    import inspect

    from gymnasium.envs.registration import load_env_creator

    from .vec import ensure_registered

    ensure_registered(env_id)
    entry = gym.spec(env_id).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    params = inspect.signature(creator).parameters
    if not any(n in params for n in _SPLIT_KWARGS) and any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    ):  # a factory (e.g. engine selection) forwarding **kwargs: ask the class it builds
        env = gym.make(env_id)
        params = inspect.signature(type(env.unwrapped).__init__).parameters
        env.close()
    for name in _SPLIT_KWARGS:
        if name in params:
            return name
    raise ValueError(
        f"--object-set: {env_id} has no train/test split argument (looked for {_SPLIT_KWARGS})"
    )


def _randomization_arg(value: str | None) -> tuple[Any, str | None]:
    """(value to pass to the env, tag) for ``--randomization``."""
    if value is None:
        return None, None
    if value in ("none", "default", "wide"):
        return value, value
    p = Path(value)
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        return load_mapping_file(p), p.stem
    raise ValueError(
        f"--randomization {value!r}: use none, default, wide or a .yaml/.json spec file"
    )


def evaluate_run(
    run_dir: str | Path,
    episodes: int = 100,
    randomization: str | None = None,
    object_set: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    video: bool = False,
    seed: int = EVAL_SEED,
    deterministic: bool = True,
    device: str = "auto",
    n_envs: int = 4,
    write: bool = True,
) -> EvalReport:
    """Evaluate the final policy of a run folder; writes ``eval_<tag>.json`` (and a video)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    run = RunDir(run_dir)
    model, vn, cfg = load_policy(run, device)
    kwargs = cfg.make_kwargs(evaluation=True)
    rand_value, rand_tag = _randomization_arg(randomization)
    if rand_value is not None:
        kwargs["randomization"] = rand_value
    if object_set is not None:
        kwargs[held_out_kwarg(cfg.env_id)] = object_set
    kwargs.update(env_kwargs or {})
    n = max(1, min(n_envs, episodes))
    envs = [
        make_env(cfg.env_id, kwargs, **({"render_mode": "rgb_array"} if video and i == 0 else {}))
        for i in range(n)
    ]
    frames: list[np.ndarray] | None = [] if video else None
    try:
        records = run_episodes(envs, policy_fn(model, vn, deterministic), episodes, seed, frames)
        fps = envs[0].metadata.get("render_fps") or 30
    finally:
        for e in envs:
            e.close()
    report = EvalReport.from_records(records, seed, deterministic)
    tag = "_".join(t for t in (rand_tag or "config", object_set) if t)
    report.extra = {
        "env_id": cfg.env_id,
        "algo": cfg.algo,
        "run_dir": str(run.root),
        "env_kwargs": kwargs,
        "randomization": randomization or "config",
        "object_set": object_set,
    }
    if write:
        if frames:
            path = write_video(frames, run.root / f"eval_{tag}.mp4", fps)
            report.extra["video"] = path.name if path else None
        atomic_write_json(run.eval_report(tag), report.to_dict())
    return report


# ---- CLI ------------------------------------------------------------------------------------


def eval_command(args: argparse.Namespace) -> int:
    """Run ``simenvs eval`` from parsed arguments; returns the exit code."""
    report = evaluate_run(
        args.run_dir,
        episodes=args.episodes,
        randomization=args.randomization,
        object_set=args.object_set,
        env_kwargs=dict(args.env_kwarg),
        video=args.video,
        seed=args.seed,
        deterministic=not args.stochastic,
        device=args.device,
        n_envs=args.n_envs,
    )
    if args.json:
        print(json.dumps(report.to_dict(with_episodes=False), indent=2))
    else:
        print(f"{report.extra['env_id']}  ({args.run_dir})")
        print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_eval_arguments(argparse.ArgumentParser(prog="simenvs eval", description=__doc__))
    return eval_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
