"""SB3 callbacks for simenvs runs: episode log, periodic evaluation, atomic checkpoints.

All three share one ``TrainingState`` so a checkpoint carries the learning curve and the
evaluation history, and a resumed run continues the same curves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from .evaluate import VALIDATION_SEED, EvalReport, policy_fn, run_episodes
from .run_dir import RunDir

__all__ = [
    "TrainingState",
    "EpisodeLogCallback",
    "PeriodicEvalCallback",
    "CheckpointCallback",
    "TimeLimitCallback",
    "score",
]


@dataclass
class TrainingState:
    """What a run has learned so far, in JSON form (saved in every checkpoint)."""

    train_episodes: dict[str, list] = field(
        default_factory=lambda: {"t": [], "r": [], "l": [], "s": []}
    )
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    wall_time_prior_s: float = 0.0
    started: float = field(default_factory=time.time)
    pretrain: dict[str, Any] | None = None
    best: dict[str, Any] | None = None  # evaluation entry of the best validation score

    def wall_time_s(self) -> float:
        return self.wall_time_prior_s + (time.time() - self.started)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_episodes": self.train_episodes,
            "evaluations": self.evaluations,
            "wall_time_s": self.wall_time_s(),
            "pretrain": self.pretrain,
            "best": self.best,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingState:
        return cls(
            train_episodes=d.get("train_episodes") or {"t": [], "r": [], "l": [], "s": []},
            evaluations=list(d.get("evaluations") or []),
            wall_time_prior_s=float(d.get("wall_time_s", 0.0)),
            pretrain=d.get("pretrain"),
            best=d.get("best"),
        )

    def truncate(self, num_timesteps: int) -> None:
        """Forget entries past ``num_timesteps`` (a resumed run replays that stretch)."""
        keep = [i for i, t in enumerate(self.train_episodes["t"]) if t <= num_timesteps]
        for k in self.train_episodes:
            self.train_episodes[k] = [self.train_episodes[k][i] for i in keep]
        self.evaluations = [e for e in self.evaluations if e["t"] <= num_timesteps]
        if self.best is not None and self.best["t"] > num_timesteps:
            self.best = None


def score(entry: dict[str, Any]) -> tuple[float, float]:
    """Model-selection key of an evaluation: success rate first, then mean return."""
    sr = entry.get("success_rate")
    return (-1.0 if sr is None else float(sr), float(entry["mean_return"]))


class EpisodeLogCallback(BaseCallback):
    """Records (steps, return, length, is_success) of every finished training episode."""

    def __init__(self, state: TrainingState):
        super().__init__()
        self.state = state
        self._successes: list[float] = []

    def _on_step(self) -> bool:
        ep = self.state.train_episodes
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if done and "episode" in info:
                ep["t"].append(int(self.num_timesteps))
                ep["r"].append(round(float(info["episode"]["r"]), 5))
                ep["l"].append(int(info["episode"]["l"]))
                s = info.get("is_success")
                ep["s"].append(None if s is None else bool(s))
                if s is not None:
                    self._successes.append(float(bool(s)))
        if self._successes:
            recent = self._successes[-100:]
            self.logger.record("rollout/success_rate", sum(recent) / len(recent))
            del self._successes[:-100]
        return True


class PeriodicEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps: deterministic episodes on validation seeds.

    Logs ``eval/mean_reward``, ``eval/success_rate`` (from ``info["is_success"]``) and its
    Wilson 95 % interval to TensorBoard/stdout, and appends to ``TrainingState.evaluations``.
    Uses the training VecNormalize statistics directly, so no env sync is needed.
    """

    def __init__(
        self,
        state: TrainingState,
        make_envs: Callable[[], Sequence[gym.Env]],
        eval_freq: int,
        n_episodes: int,
        on_eval: Callable[[], None] | None = None,
        on_new_best: Callable[[dict[str, Any]], None] | None = None,
        verbose: int = 1,
    ):
        super().__init__(verbose)
        self.state = state
        self.make_envs = make_envs
        self.eval_freq = eval_freq
        self.n_episodes = n_episodes
        self.on_eval = on_eval
        self.on_new_best = on_new_best
        self.envs: Sequence[gym.Env] | None = None
        self.next_eval = 0

    def _init_callback(self) -> None:
        done = [e["t"] for e in self.state.evaluations]
        last = max(done) if done else int(self.model.num_timesteps)
        self.next_eval = (last // self.eval_freq + 1) * self.eval_freq if self.eval_freq > 0 else 0

    def evaluate(self) -> EvalReport:
        if self.envs is None:
            self.envs = self.make_envs()
        model: BaseAlgorithm = self.model
        act = policy_fn(model, model.get_vec_normalize_env(), deterministic=True)
        records = run_episodes(self.envs, act, self.n_episodes, seed=VALIDATION_SEED)
        return EvalReport.from_records(records, VALIDATION_SEED)

    def _on_step(self) -> bool:
        if self.eval_freq <= 0 or self.n_episodes <= 0 or self.num_timesteps < self.next_eval:
            return True
        self.next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
        self.evaluate_now()
        return True

    def evaluate_now(self) -> dict[str, Any]:
        """Evaluate at the current step, log it and append it to the state."""
        self.num_timesteps = int(self.model.num_timesteps)
        t0 = time.time()
        rep = self.evaluate()
        entry = {
            "t": int(self.num_timesteps),
            "wall_time_s": round(self.state.wall_time_s(), 2),
            "mean_return": rep.mean_return,
            "std_return": rep.std_return,
            "mean_length": rep.mean_length,
            "success_rate": rep.success_rate,
            "success_ci95": rep.success_ci95,
            "failure_counts": rep.failure_counts,
        }
        self.state.evaluations.append(entry)
        if getattr(self.model, "_logger", None) is not None:  # None before learn() starts
            self.logger.record("eval/mean_reward", rep.mean_return)
            self.logger.record("eval/mean_ep_length", rep.mean_length)
            if rep.success_rate is not None:
                self.logger.record("eval/success_rate", rep.success_rate)
                self.logger.record("eval/success_ci95_low", rep.success_ci95[0])
                self.logger.record("eval/success_ci95_high", rep.success_ci95[1])
            self.logger.record("eval/time_s", time.time() - t0)
        if self.verbose:
            sr = "" if rep.success_rate is None else f", success {100 * rep.success_rate:.0f} %"
            print(
                f"[eval] steps={self.num_timesteps} return={rep.mean_return:.2f}{sr} "
                f"({rep.episodes} episodes, {time.time() - t0:.1f} s)"
            )
        if self.state.best is None or score(entry) > score(self.state.best):
            self.state.best = entry
            if self.on_new_best is not None:
                self.on_new_best(entry)
        if self.on_eval is not None:
            self.on_eval()
        return entry

    def _on_training_end(self) -> None:
        if self.envs is not None:
            for e in self.envs:
                e.close()
            self.envs = None


class CheckpointCallback(BaseCallback):
    """Atomic checkpoint (model, VecNormalize, replay buffer, state) every ``freq`` env steps.

    Saves at the start of a rollout, i.e. right after a policy update, so the saved step
    count matches the data the policy has learned from (a PPO rollout is never half-saved).
    """

    def __init__(
        self,
        run: RunDir,
        state: TrainingState,
        freq: int,
        keep: int = 2,
        extra_state: Callable[[], dict[str, Any]] | None = None,
    ):
        super().__init__()
        self.run = run
        self.state = state
        self.freq = freq
        self.keep = keep
        self.extra_state = extra_state
        self.last_saved = 0

    def _init_callback(self) -> None:
        self.last_saved = int(self.model.num_timesteps)

    def save(self) -> None:
        state = self.state.to_dict()
        if self.extra_state is not None:
            state.update(self.extra_state())
        self.run.save_checkpoint(self.model, state, keep=self.keep)
        self.last_saved = int(self.model.num_timesteps)

    def _on_rollout_start(self) -> None:
        if self.freq > 0 and self.model.num_timesteps - self.last_saved >= self.freq:
            self.save()

    def _on_step(self) -> bool:
        return True


class TimeLimitCallback(BaseCallback):
    """Ends ``learn`` once ``seconds`` of wall time have passed since ``start`` (default: now;
    ``train`` passes its own start so pretraining counts against the budget)."""

    def __init__(self, seconds: float, start: float | None = None):
        super().__init__()
        self.seconds = float(seconds)
        self.start = time.time() if start is None else float(start)
        self.hit = False

    def _on_step(self) -> bool:
        if time.time() - self.start >= self.seconds:
            self.hit = True
            return False
        return True
