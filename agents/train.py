"""Train an SB3 agent on a simenvs (or any Gymnasium) env into a self-contained run folder.

    simenvs train simenvs/RooftopLanding-v0 --algo ppo --steps 1e6 --out runs/landing
    simenvs train --resume --out runs/landing            # continue after a kill

Read top to bottom: resolve the config, build the vector env (+ VecNormalize), build or
resume the model, learn with checkpoint/eval/episode-log callbacks, then write the final
model, a held-out evaluation, metrics, the learning curve and a video. See ``run_dir.py``
for the folder layout and ``config.py`` for the config files.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .callbacks import (
    CheckpointCallback,
    EpisodeLogCallback,
    PeriodicEvalCallback,
    TimeLimitCallback,
    TrainingState,
    score,
)
from .cli_args import add_train_arguments
from .config import (
    TrainConfig,
    load_config,
    resolve_algo_kwargs,
    resolve_device,
    resolve_policy_kwargs,
)
from .evaluate import (
    EVAL_SEED,
    EvalReport,
    _randomization_arg,
    load_policy_files,
    policy_fn,
    run_episodes,
)
from .media import plot_learning_curve, write_video
from .run_dir import FORMAT, RunDir, atomic_write_json
from .vec import make_env, make_vec_env, wrap_for_policy

__all__ = [
    "TrainResult",
    "train",
    "add_train_arguments",
    "config_from_args",
    "train_command",
    "main",
]


@dataclass
class TrainResult:
    run_dir: Path
    model: Any
    metrics: dict[str, Any]
    final_eval: EvalReport | None


def _algo_class(algo: str) -> type:
    from stable_baselines3 import PPO, SAC

    return {"ppo": PPO, "sac": SAC}[algo]


def _versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3
    import torch

    v = {
        "python": platform.python_version(),
        "gymnasium": gymnasium.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    try:
        import mujoco

        v["mujoco"] = mujoco.__version__
    except ImportError:
        pass
    return v


def _randomization_spec(env: Any) -> Any:
    """The env's resolved randomization spec as a dict, if the env exposes one."""
    base = env.unwrapped
    for attr in ("randomization_spec", "randomization", "spec_randomization"):
        spec = getattr(base, attr, None)
        if spec is None or isinstance(spec, str):
            continue
        if hasattr(spec, "to_dict"):
            try:
                return spec.to_dict()
            except Exception:  # an env-specific spec that cannot serialize: record nothing
                return None
        if isinstance(spec, dict):
            return spec
    return None


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def _run_config(cfg: TrainConfig, device: str, vec_used: str, spec: Any) -> dict[str, Any]:
    """config.json: the TrainConfig plus what was resolved at run time."""
    d = cfg.to_dict()
    d.update(
        {
            "format": FORMAT,
            "device_resolved": device,
            "vec_resolved": vec_used,
            "randomization_spec": spec,
            "files": {"model": "model.zip", "vecnormalize": "vecnormalize.pkl"},
            "versions": _versions(),
        }
    )
    return d


def _record_video(cfg: TrainConfig, model: Any, vn: Any, path: Path) -> Path | None:
    """Render ``video_episodes`` deterministic episodes of the final policy, if the env can."""
    try:
        env = make_env(cfg.env_id, cfg.make_kwargs(evaluation=True), render_mode="rgb_array")
    except Exception as e:
        warnings.warn(f"no video: cannot render {cfg.env_id} ({e})", stacklevel=2)
        return None
    try:
        frames: list[np.ndarray] = []
        act = policy_fn(model, vn, deterministic=True)
        run_episodes([env], act, cfg.video_episodes, EVAL_SEED, frames, cfg.video_episodes)
        frames = [f for f in frames if f is not None]
        fps = env.metadata.get("render_fps") or 30
        return write_video(frames, path, fps) if frames else None
    except Exception as e:  # rendering is optional output; training results still stand
        warnings.warn(f"no video: rendering failed ({type(e).__name__}: {e})", stacklevel=2)
        return None
    finally:
        env.close()


def train(
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress_bar: bool = True,
    verbose: int = 1,
) -> TrainResult:
    """Train per ``cfg`` into run folder ``out``; with ``resume`` continue its last checkpoint.

    When resuming, the stored config wins except for ``total_timesteps``, ``device`` and ``vec``
    (taken from ``cfg``), so ``--resume --steps 2e6`` extends a finished run.
    """
    import torch
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import VecNormalize

    run = RunDir(out)
    ckpt = None
    if run.is_run() and not resume:
        raise FileExistsError(
            f"{run.root} already holds a run; pass --resume to continue it or choose a new --out"
        )
    if resume and run.is_run():
        stored = TrainConfig.from_dict(run.read_config())
        if stored.env_id != cfg.env_id or stored.algo != cfg.algo:
            raise ValueError(
                f"--resume: {run.root} was trained on {stored.env_id} with {stored.algo}, "
                f"not {cfg.env_id} with {cfg.algo}"
            )
        cfg = dataclasses.replace(
            stored, total_timesteps=cfg.total_timesteps, device=cfg.device, vec=cfg.vec
        )
        ckpt = run.latest_checkpoint()
        if ckpt is None and verbose:
            print(f"--resume: no checkpoint in {run.checkpoints}; starting from scratch")
    run.root.mkdir(parents=True, exist_ok=True)
    session_start = time.time()

    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    device = resolve_device(cfg.device)
    start_steps = ckpt.num_timesteps if ckpt else 0
    set_random_seed(cfg.seed + start_steps)
    state = TrainingState()
    if ckpt is not None:
        state = TrainingState.from_dict(ckpt.state())
        state.truncate(ckpt.num_timesteps)

    # ---- environments -----------------------------------------------------------------------
    algo_kwargs = resolve_algo_kwargs(cfg.algo_kwargs)
    norm = cfg.normalize_kwargs()
    if norm is not None and norm.get("gamma") is None:
        norm["gamma"] = float(algo_kwargs.get("gamma", 0.99))
    venv, vec_used = make_vec_env(
        cfg.env_id, cfg.n_envs, cfg.vec, cfg.seed + start_steps, cfg.make_kwargs()
    )
    if ckpt is not None and ckpt.vecnormalize is not None:
        from .vec import _transpose_images

        venv = _transpose_images(VecNormalize.load(str(ckpt.vecnormalize), venv))
    else:
        venv = wrap_for_policy(venv, norm)

    # ---- model ------------------------------------------------------------------------------
    algo_cls = _algo_class(cfg.algo)
    if ckpt is not None:
        model = algo_cls.load(ckpt.model, env=venv, device=device)
        if ckpt.replay_buffer is not None:
            model.load_replay_buffer(ckpt.replay_buffer)
        if verbose:
            print(f"resumed {run.root} from step {ckpt.num_timesteps}")
    else:
        model = algo_cls(
            cfg.policy,
            venv,
            seed=cfg.seed,
            device=device,
            tensorboard_log=str(run.tensorboard),
            policy_kwargs=resolve_policy_kwargs(cfg.policy_kwargs) or None,
            verbose=verbose,
            **algo_kwargs,
        )
    model.tensorboard_log = str(run.tensorboard)
    if ckpt is None and cfg.pretrain:
        from .pretrain import PretrainConfig, pretrain_from_expert

        pcfg = PretrainConfig.from_dict(cfg.pretrain)
        state.pretrain = pretrain_from_expert(model, cfg.env_id, cfg.make_kwargs(), pcfg, verbose)

    spec_env = make_env(cfg.env_id, cfg.make_kwargs())
    spec_env.reset(seed=cfg.seed)
    atomic_write_json(run.config, _run_config(cfg, device, vec_used, _randomization_spec(spec_env)))
    spec_env.close()

    def metrics(final: EvalReport | None = None, video: Path | None = None) -> dict[str, Any]:
        wall = state.wall_time_s()
        done = int(model.num_timesteps)
        m = {
            "env_id": cfg.env_id,
            "algo": cfg.algo,
            "device": device,
            "device_name": _device_name(device),
            "vec": vec_used,
            "n_envs": cfg.n_envs,
            "seed": cfg.seed,
            "total_timesteps": cfg.total_timesteps,
            "num_timesteps": done,
            "wall_time_s": round(wall, 2),
            "steps_per_s": round(done / wall, 1) if wall > 0 else None,
            "stopped_by_time_limit": bool(time_cb is not None and time_cb.hit),
            "final_eval": None,
            "video": video.name if video else None,
            "pretrain": state.pretrain,
            "evaluations": state.evaluations,
            "train_episodes": state.train_episodes,
            "versions": _versions(),
        }
        if final is not None:
            m["final_eval"] = {
                **final.to_dict(with_episodes=False),
                "env_kwargs": cfg.make_kwargs(evaluation=True),
            }
        return m

    def make_eval_envs() -> list:
        n = max(1, min(cfg.eval_n_envs, cfg.eval_episodes))
        return [make_env(cfg.env_id, cfg.make_kwargs(evaluation=True)) for _ in range(n)]

    ckpt_cb = CheckpointCallback(run, state, cfg.checkpoint_freq, cfg.keep_checkpoints)
    eval_cb = PeriodicEvalCallback(
        state,
        make_eval_envs,
        cfg.eval_freq,
        cfg.eval_episodes,
        on_eval=lambda: atomic_write_json(run.metrics, metrics()),
        on_new_best=(lambda e: run.save_best(model, {"best": e})) if cfg.select_best else None,
        verbose=verbose,
    )
    callbacks = [EpisodeLogCallback(state), eval_cb, ckpt_cb]
    time_cb = TimeLimitCallback(cfg.time_limit_s, session_start) if cfg.time_limit_s else None
    if time_cb is not None:
        callbacks.append(time_cb)

    # ---- learn ------------------------------------------------------------------------------
    evaluating = cfg.eval_freq > 0 and cfg.eval_episodes > 0
    if ckpt is None and evaluating:
        eval_cb.init_callback(model)
        eval_cb.evaluate_now()  # the starting point of the curve (after any pretraining)
    remaining = cfg.total_timesteps - int(model.num_timesteps)
    try:
        if remaining > 0:
            model.learn(
                total_timesteps=remaining,
                callback=callbacks,
                progress_bar=progress_bar,
                reset_num_timesteps=ckpt is None,
                tb_log_name=cfg.algo.upper(),
            )
    except KeyboardInterrupt:
        ckpt_cb.save()
        atomic_write_json(run.metrics, metrics())
        print(
            f"\ninterrupted: checkpoint saved at step {model.num_timesteps}; "
            f"continue with --resume --out {run.root}"
        )
        venv.close()
        raise

    # ---- outputs ----------------------------------------------------------------------------
    run.save_final(model)
    ckpt_cb.save()
    venv.close()
    state_wall = state.wall_time_s()
    policy, policy_vn = model, model.get_vec_normalize_env()
    selected = None
    if cfg.select_best and evaluating:
        evals = state.evaluations
        last = evals[-1] if evals and evals[-1]["t"] == model.num_timesteps else None
        last = last or eval_cb.evaluate_now()  # validation score of the final policy
        best = state.best
        if best is not None and best["t"] != last["t"] and score(best) > score(last):
            import shutil

            shutil.copyfile(run.best / "model.zip", run.model)
            if (run.best / "vecnormalize.pkl").exists():
                shutil.copyfile(run.best / "vecnormalize.pkl", run.vecnormalize)
            policy, policy_vn = load_policy_files(cfg.algo, run.model, run.vecnormalize, device)
            selected = {"t": best["t"], "validation": best, "final_validation": last}
            if verbose:
                print(
                    f"select_best: shipping the policy from step {best['t']} (validation "
                    f"success {best['success_rate']}, final {last['success_rate']})"
                )
    eval_cb._on_training_end()  # closes its envs (reopened if select_best evaluated again)
    final = None
    if cfg.final_eval_episodes > 0:
        envs = make_eval_envs()
        try:
            act = policy_fn(policy, policy_vn, deterministic=True)
            records = run_episodes(envs, act, cfg.final_eval_episodes, seed=EVAL_SEED)
        finally:
            for e in envs:
                e.close()
        final = EvalReport.from_records(records, EVAL_SEED)
    video = _record_video(cfg, policy, policy_vn, run.video("mp4")) if cfg.video else None
    state.wall_time_prior_s, state.started = state_wall, time.time()  # eval time excluded
    m = metrics(final, video)
    m["selected"] = selected
    atomic_write_json(run.metrics, m)
    plot_learning_curve(m, run.learning_curve)
    if verbose and final is not None:
        print(f"final evaluation ({final.episodes} episodes, seeds {EVAL_SEED}+):")
        print(final.summary())
        print(f"run folder: {run.root}")
    return TrainResult(run.root, model, m, final)


# ---- CLI ------------------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """Resolve the config and run folder from parsed ``simenvs train`` arguments."""
    out = Path(args.out) if args.out else None
    if args.resume and out is not None and RunDir(out).is_run():
        stored = RunDir(out).read_config()
        env_id = stored["env_id"]
        if args.env_id and args.env_id != env_id:
            raise ValueError(f"--resume: {out} holds a {env_id} run, not {args.env_id}")
        cfg = TrainConfig.from_dict(stored)
        cfg = dataclasses.replace(
            cfg,
            total_timesteps=args.steps or cfg.total_timesteps,
            device=args.device or cfg.device,
            vec=args.vec or cfg.vec,
        )
        cfg.validate()
        return cfg, out
    if args.resume and out is None:
        raise ValueError("--resume needs --out RUN_DIR")
    env_kwargs = dict(args.env_kwarg)
    rand, _ = _randomization_arg(args.randomization)
    overrides = {
        "total_timesteps": args.steps,
        "n_envs": args.n_envs,
        "vec": args.vec,
        "device": args.device,
        "seed": args.seed,
        "randomization": rand,
        "checkpoint_freq": args.checkpoint_freq,
        "eval_freq": args.eval_freq,
        "eval_episodes": args.eval_episodes,
        "video": False if args.no_video else None,
        "time_limit_s": args.time_limit * 60 if args.time_limit else None,
    }
    cfg = load_config(args.env_id, args.algo, args.config, overrides)
    if env_kwargs:
        cfg.env_kwargs = {**cfg.env_kwargs, **env_kwargs}
    if out is None:
        name = cfg.env_id.split(":")[-1].split("/")[-1]
        out = Path("runs") / f"{name}-{cfg.algo}-s{cfg.seed}"
    return cfg, out


def train_command(args: argparse.Namespace) -> int:
    """Run ``simenvs train`` from parsed arguments; returns the exit code."""
    cfg, out = config_from_args(args)
    try:
        train(
            cfg,
            out,
            resume=args.resume,
            progress_bar=not args.no_progress,
            verbose=0 if args.quiet else 1,
        )
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(prog="simenvs train", description=__doc__))
    return train_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
