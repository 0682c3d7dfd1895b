"""The bridge between SimOpt and ``simenvs.agents``: train or fine-tune an SB3 policy per
iteration, and measure a policy's success in a (stand-in) reality.

SimOpt (Chebotar et al. 2019) retrains the policy on the adapted distribution between
iterations, warm-started from the previous one. ``SB3Trainer`` is that ``Trainer``:

* first call (no previous SB3 policy): a full ``simenvs.agents.train.train`` run from the env's
  shipped config (behaviour cloning from the scripted expert if the config says so, then RL),
  on the env's randomization with SimOpt's distribution merged over it;
* later calls: ``warm_start`` loads the previous ``model.zip`` *and* its VecNormalize
  statistics into a vector env of the new distribution, then RL continues for
  ``finetune_timesteps`` (optionally after a few DAgger rounds on the new distribution).

Both write a run folder that ``simenvs eval`` and ``agents.evaluate.load_policy`` read, and
return an ``SB3PolicyFactory``: picklable data (a path), so process and Ray executors can
ship it, that builds an ``obs -> action`` policy with the run's observation normalization.

``evaluate_success`` runs a policy in any ``RealSystem`` and reports the success rate with a
Wilson 95 % interval.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .loop import TrainRequest
from .real import RealSystem
from .rollout import PolicyFactory, make_env

__all__ = [
    "SB3Policy",
    "SB3PolicyFactory",
    "SB3Trainer",
    "merged_spec",
    "warm_start",
    "finetune",
    "evaluate_success",
    "PRETRAIN_DATA",
]

# A run's BC/DAgger dataset, saved next to its model with ``SB3Trainer(keep_data=True)``.
PRETRAIN_DATA = "pretrain_data.npz"


def merged_spec(
    env_id: str,
    fragment: Mapping[str, Any] | None,
    base: Any = "default",
    env_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The env's ``base`` randomization (preset name, dict or file) with a SimOpt spec
    ``fragment`` merged over it, as a full spec dict to pass as ``randomization=``.

    Only the parameters the fragment names change; everything else (appearance, sensor,
    other dynamics) keeps the base distribution the policy was meant to be robust to. The
    result is bound to ``env_kwargs`` (layout ranges such as Grasp's object indices depend on
    them): build one per set of env kwargs.
    """
    kwargs = {k: v for k, v in dict(env_kwargs or {}).items() if k != "randomization"}
    probe = make_env(env_id, {**kwargs, "randomization": base})
    try:
        spec = probe.unwrapped.randomization
        if fragment:
            spec = spec.merged(dict(fragment))
        out = spec.to_dict()
    finally:
        probe.close()
    # Validate against the registry now (bad fragments fail here, not in a training worker).
    check = make_env(env_id, {**kwargs, "randomization": out})
    check.close()
    return out


# ---- policies -------------------------------------------------------------------------------

_LOADED: dict[tuple[str, float], tuple[Any, Any]] = {}


class SB3Policy:
    """``act(obs)`` of an SB3 model after the run's VecNormalize observation statistics
    (frozen), deterministic by default: what SimOpt's rollouts and ``EnvReality`` call."""

    def __init__(self, model: Any, vecnormalize: Any = None, deterministic: bool = True):
        self.model, self.vecnormalize, self.deterministic = model, vecnormalize, deterministic

    def reset(self) -> None:
        pass

    def act(self, obs: Any) -> np.ndarray:
        if self.vecnormalize is not None:
            obs = self.vecnormalize.normalize_obs(obs)
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(action)


@dataclass(frozen=True)
class SB3PolicyFactory:
    """A ``PolicyFactory`` over a run folder (``model.zip`` + ``vecnormalize.pkl``).

    Plain data, so it pickles to worker processes; each process loads the files once (cached
    by path and modification time) and hands every env an ``SB3Policy``.
    """

    run_dir: str
    deterministic: bool = True
    device: str = "cpu"

    def load(self) -> tuple[Any, Any]:
        """(model, VecNormalize or None) of the run, loaded once per process."""
        from simenvs.agents.evaluate import load_policy_files
        from simenvs.agents.run_dir import RunDir

        run = RunDir(self.run_dir)
        if not run.model.exists():
            raise FileNotFoundError(f"{run.model} not found: {self.run_dir} holds no trained model")
        key = (str(run.model.resolve()), run.model.stat().st_mtime)
        if key not in _LOADED:
            algo = run.read_config().get("algo", "ppo")
            _LOADED[key] = load_policy_files(algo, run.model, run.vecnormalize, self.device)
        return _LOADED[key]

    def __call__(self, env: gym.Env | None = None) -> SB3Policy:
        model, vn = self.load()
        return SB3Policy(model, vn, self.deterministic)


# ---- training -------------------------------------------------------------------------------


def warm_start(previous: str | os.PathLike | SB3PolicyFactory, cfg: Any, seed: int = 0) -> Any:
    """An SB3 model for ``cfg`` (a ``TrainConfig``) whose parameters and VecNormalize statistics
    are those of the ``previous`` run, attached to a fresh vector env of ``cfg``'s env kwargs
    and randomization (the statistics keep updating from there, as in one long run)."""
    from stable_baselines3.common.vec_env import VecNormalize

    from simenvs.agents.config import resolve_algo_kwargs, resolve_device
    from simenvs.agents.run_dir import RunDir
    from simenvs.agents.train import _algo_class
    from simenvs.agents.vec import _transpose_images, make_vec_env, wrap_for_policy

    prev = RunDir(previous.run_dir if isinstance(previous, SB3PolicyFactory) else previous)
    stored = prev.read_config()
    if stored.get("env_id") != cfg.env_id or stored.get("algo", "ppo") != cfg.algo:
        raise ValueError(
            f"cannot warm-start {cfg.env_id} ({cfg.algo}) from {prev.root}: it holds "
            f"{stored.get('env_id')} ({stored.get('algo')})"
        )
    if not prev.model.exists():
        raise FileNotFoundError(f"{prev.model} not found: nothing to warm-start from")
    venv, _ = make_vec_env(cfg.env_id, cfg.n_envs, cfg.vec, seed, cfg.make_kwargs())
    if prev.vecnormalize.exists():
        venv = VecNormalize.load(str(prev.vecnormalize), venv)
        venv.training = True
        venv = _transpose_images(venv)
    else:
        venv = wrap_for_policy(venv, None)
    # The config's schedules replace the stored ones (SB3 rebuilds them in ``_setup_model``).
    algo_kwargs = resolve_algo_kwargs(cfg.algo_kwargs)
    custom = {k: algo_kwargs[k] for k in ("learning_rate", "clip_range") if k in algo_kwargs}
    model = _algo_class(cfg.algo).load(
        prev.model, env=venv, device=resolve_device(cfg.device), custom_objects=custom or None
    )
    return model


def finetune(
    previous: str | os.PathLike | SB3PolicyFactory,
    cfg: Any,
    out: str | os.PathLike,
    timesteps: int,
    *,
    pretrain: Mapping[str, Any] | None = None,
    verbose: int = 0,
) -> Path:
    """Continue the ``previous`` run on ``cfg``'s distribution for ``timesteps`` RL steps
    (after optional BC/DAgger rounds ``pretrain``, see ``agents.pretrain``) and write a run
    folder ``out`` (config.json, model.zip, vecnormalize.pkl, metrics.json)."""
    import torch

    from simenvs.agents.run_dir import RunDir, atomic_write_json

    if timesteps < 0:
        raise ValueError(f"finetune timesteps must be >= 0, got {timesteps}")
    run = RunDir(out)
    if run.is_run():
        raise FileExistsError(f"{run.root} already holds a run; choose a new folder")
    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    t0 = time.perf_counter()
    model = warm_start(previous, cfg, seed=cfg.seed)
    start = int(model.num_timesteps)
    pre = None
    if pretrain:
        from simenvs.agents.pretrain import PretrainConfig, pretrain_from_expert

        pcfg = PretrainConfig.from_dict(dict(pretrain))
        pre = pretrain_from_expert(model, cfg.env_id, cfg.make_kwargs(), pcfg, verbose)
    if timesteps > 0:
        model.learn(total_timesteps=int(timesteps), reset_num_timesteps=False, progress_bar=False)
    run.root.mkdir(parents=True, exist_ok=True)
    prev_dir = previous.run_dir if isinstance(previous, SB3PolicyFactory) else str(previous)
    atomic_write_json(
        run.config,
        {**cfg.to_dict(), "format": "simenvs-run/1", "warm_start_from": str(prev_dir),
         "files": {"model": "model.zip", "vecnormalize": "vecnormalize.pkl"}},
    )  # fmt: skip
    run.save_final(model)
    wall = time.perf_counter() - t0
    atomic_write_json(
        run.metrics,
        {"env_id": cfg.env_id, "algo": cfg.algo, "warm_start_from": str(prev_dir),
         "start_timesteps": start, "num_timesteps": int(model.num_timesteps),
         "finetune_timesteps": int(timesteps), "pretrain": pre, "wall_time_s": round(wall, 2)},
    )  # fmt: skip
    model.get_env().close()
    return run.root


@dataclass
class SB3Trainer:
    """SimOpt ``Trainer``: train (first iteration) or fine-tune (later ones) an SB3 policy on
    the env with SimOpt's current distribution merged into ``base_randomization``.

    ``config``: a ``TrainConfig`` (default: the env's shipped config, ``load_config``);
    ``overrides``: TrainConfig fields for every run (``total_timesteps`` of the first run,
    ``pretrain``, ``n_envs``, ``eval_freq``...); ``base_randomization``: what the fragment is
    merged over (default: the config's randomization, else "default"); ``finetune_timesteps``:
    RL steps per warm-started iteration (default: the first run's ``total_timesteps``);
    ``finetune_pretrain``: BC/DAgger rounds on the new distribution before those steps;
    ``keep_data``: DAgger aggregation across warm starts: every run saves its BC/DAgger
    dataset (``PRETRAIN_DATA``, raw observations + expert labels) and a fine-tune starts its
    aggregate from the previous run's (``PretrainConfig.init_data``/``save_data``; sound for
    experts whose labels do not depend on the distribution). ``runs`` lists the run folders
    made, in order.
    """

    env_id: str
    config: Any = None
    overrides: dict[str, Any] = field(default_factory=dict)
    base_randomization: Any = None
    finetune_timesteps: int | None = None
    finetune_pretrain: dict[str, Any] | None = None
    device: str = "cpu"
    verbose: int = 0
    keep_data: bool = False
    runs: list[str] = field(default_factory=list)

    def train_config(
        self, fragment: Mapping[str, Any] | None, run_dir: str | os.PathLike | None = None
    ) -> Any:
        """The ``TrainConfig`` of one run: base config + overrides + the merged spec (with
        ``keep_data``, the BC/DAgger dataset of a first run in ``run_dir`` is saved there)."""
        from simenvs.agents.config import TrainConfig, load_config

        cfg = self.config if self.config is not None else load_config(self.env_id)
        if not isinstance(cfg, TrainConfig):
            cfg = TrainConfig.from_dict(dict(cfg))
        d = {**cfg.to_dict(), **copy.deepcopy(self.overrides), "device": self.device}
        if d["env_id"] != self.env_id:
            raise ValueError(f"config is for {d['env_id']!r}, trainer for {self.env_id!r}")
        base = self.base_randomization
        if base is None:
            base = d.get("randomization") or "default"
        env_kwargs = dict(d.get("env_kwargs") or {})
        env_kwargs.pop("randomization", None)
        d["env_kwargs"] = env_kwargs
        if self.keep_data and d.get("pretrain") and run_dir is not None:
            d["pretrain"] = {**d["pretrain"], "save_data": str(Path(run_dir) / PRETRAIN_DATA)}
        d["randomization"] = merged_spec(self.env_id, fragment, base, env_kwargs)
        eval_kwargs = dict(d.get("eval_env_kwargs") or {})
        if eval_kwargs and "randomization" not in eval_kwargs:
            # A spec is bound to its env kwargs (e.g. Grasp's object index range depends on
            # object_set), so evaluation envs get the same merge over their own kwargs.
            eval_kwargs["randomization"] = merged_spec(
                self.env_id, fragment, base, {**env_kwargs, **eval_kwargs}
            )
            d["eval_env_kwargs"] = eval_kwargs
        return TrainConfig.from_dict(d)

    def __call__(self, request: TrainRequest) -> SB3PolicyFactory:
        from simenvs.agents.train import train

        out = Path(request.run_dir)
        cfg = self.train_config(request.spec, out)
        previous = request.previous
        if isinstance(previous, SB3PolicyFactory):
            steps = self.finetune_timesteps
            if steps is None:
                steps = cfg.total_timesteps
            pretrain = self.finetune_pretrain
            if self.keep_data and pretrain:
                data = Path(previous.run_dir) / PRETRAIN_DATA
                if not data.is_file():
                    raise FileNotFoundError(
                        f"keep_data: {data} not found; the run {previous.run_dir} was trained "
                        "without saving its BC/DAgger dataset (retrain it with keep_data)"
                    )
                pretrain = {
                    **pretrain,
                    "init_data": str(data),
                    "save_data": str(out / PRETRAIN_DATA),
                }
            finetune(
                previous, cfg, out, int(steps), pretrain=pretrain, verbose=self.verbose,
            )  # fmt: skip
        else:  # first iteration (or a non-SB3 previous policy, e.g. the scripted expert)
            train(cfg, out, progress_bar=False, verbose=self.verbose)
        (out / "simopt_request.json").write_text(
            json.dumps(
                {"iteration": request.iteration, "spec": request.spec,
                 "distribution": None if request.distribution is None
                 else request.distribution.to_dict(),
                 "warm_start_from": getattr(previous, "run_dir", None)},
                indent=1, default=float,
            )
        )  # fmt: skip
        self.runs.append(str(out))
        return SB3PolicyFactory(str(out), device=self.device)


# ---- evaluation in reality ------------------------------------------------------------------


def evaluate_success(
    policy: PolicyFactory,
    reality: RealSystem,
    episodes: int = 20,
    *,
    seed: int = 50_000,
) -> dict[str, Any]:
    """Success of ``policy`` over ``episodes`` episodes of ``reality`` (seeds ``seed``..):
    {"success_rate", "ci95" (Wilson), "successes", "episodes", "mean_length", "reality"}.
    Episodes whose env reports no ``is_success`` count as failures (and are counted)."""
    from simenvs.agents.stats import wilson_interval

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    data = reality.collect(policy, episodes, iteration=0, seed=seed)
    flags = [e.success for e in data.episodes]
    k = sum(1 for f in flags if f)
    n = len(flags)
    lo, hi = wilson_interval(k, n)
    return {
        "success_rate": k / n if n else float("nan"),
        "ci95": [lo, hi],
        "successes": k,
        "episodes": n,
        "unreported": sum(1 for f in flags if f is None),
        "mean_length": float(np.mean([len(e) for e in data.episodes])) if n else float("nan"),
        "reality": getattr(reality, "name", type(reality).__name__),
    }
