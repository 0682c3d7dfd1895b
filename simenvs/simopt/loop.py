"""The SimOpt loop (Chebotar et al. 2019) with checkpoints, plots and an offline replay mode.

Per iteration: (optionally) train or fine-tune the policy on the current distribution; collect
real rollouts with it; then ``updates`` times: sample parameter vectors, run the same policy
in simulation for each (through an ``Executor``), score each by its discrepancy to the real
episodes, and update the Gaussian (REPS or CMA-ES). A JSON checkpoint is written atomically
after every iteration, so a killed run resumes losing at most the iteration in progress.

Offline mode (``mode="replay"``, DROPO-style) replays the recorded actions open loop from the
recorded start states instead of running the policy, for when only logs exist.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from simenvs.data import Episode, Rollouts, obs_layout_of, obs_vector, save_rollouts
from simenvs.randomization.distributions import MultivariateNormal

from .discrepancy import Discrepancy
from .env_params import expand_params, param_refs, param_space, prior_moments, spec_fragment
from .optimizer import OPTIMIZERS, ParamSpace, make_optimizer
from .real import RealSystem
from .rollout import (
    EnvFactory,
    Executor,
    Job,
    LocalExecutor,
    PolicyFactory,
    Replay,
    RolloutTask,
    make_env,
)

__all__ = ["SimOptConfig", "SimOpt", "TrainRequest", "Trainer", "CHECKPOINT", "MODES"]

CHECKPOINT = "simopt.json"
MODES = ("closed_loop", "replay")


@dataclass
class SimOptConfig:
    """Everything that defines a run (stored in the checkpoint, checked on resume).

    ``samples`` parameter vectors per update, ``updates`` optimizer updates per iteration,
    each sample compared against ``episodes_per_sample`` of the iteration's real episodes
    (None: all). The prior is the moment match of the env's ``prior_preset`` randomization
    ("default", "wide", or a spec file), where ``prior`` gives uniform ranges
    ``{name: [low, high]}`` instead; ``prior_mean``/``prior_std`` set the Gaussian directly.
    ``discrepancy`` is a ``Discrepancy.to_dict()``; ``auto_scale`` divides each compared
    dimension by its spread in the first iteration's real data (then frozen).
    ``sim_env_kwargs`` build the simulation env (default: no randomization besides the
    layout, so only the adapted parameters vary).
    """

    env_id: str
    params: list[str]
    iterations: int = 3
    real_episodes: int = 3
    samples: int = 16
    updates: int = 3
    episodes_per_sample: int | None = None
    optimizer: str = "reps"
    epsilon: float = 1.0
    min_temperature: float = 1e-3
    min_std_frac: float = 0.02
    prior: dict[str, list[float]] = field(default_factory=dict)
    prior_preset: str = "default"
    prior_mean: list[float] | None = None
    prior_std: list[float] | None = None
    discrepancy: dict[str, Any] = field(default_factory=lambda: Discrepancy().to_dict())
    auto_scale: bool = True
    mode: str = "closed_loop"
    replay_reset_every: int | None = None
    sim_env_kwargs: dict[str, Any] = field(default_factory=lambda: {"randomization": "none"})
    fixed_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    real_seed: int = 10_000
    plot: bool = True

    def __post_init__(self) -> None:
        if not self.params:
            raise ValueError("SimOpt needs at least one parameter name to adapt")
        for name in ("iterations", "real_episodes", "samples", "updates"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.samples < 2:
            raise ValueError(f"samples must be >= 2 per update, got {self.samples}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: {list(OPTIMIZERS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; allowed: {list(MODES)}")
        if self.episodes_per_sample is not None and self.episodes_per_sample < 1:
            raise ValueError(f"episodes_per_sample must be >= 1, got {self.episodes_per_sample}")
        Discrepancy.from_dict(self.discrepancy)  # validates

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SimOptConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainRequest:
    """What a trainer gets: the distribution to train on (as a Gaussian and as a
    randomization-spec fragment to merge over the env's spec), where to write, and the
    previous policy factory to warm-start from."""

    iteration: int
    distribution: MultivariateNormal
    space: ParamSpace
    spec: dict[str, Any]
    run_dir: Path
    previous: PolicyFactory | None


class Trainer(Protocol):
    def __call__(self, request: TrainRequest) -> PolicyFactory: ...


def _atomic_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _select(layout: Sequence[tuple[str, int, str]], fields: Sequence[str]) -> np.ndarray:
    offsets, start = {}, 0
    for n, size, _ in layout:
        offsets[n] = (start, size)
        start += size
    return np.concatenate([np.arange(offsets[f][0], sum(offsets[f])) for f in fields])


class SimOpt:
    """One SimOpt run in ``run_dir``.

    ``reality``: a ``RealSystem``. ``policy``: a policy factory ``env -> policy`` (the scripted
    expert, a trained agent...); ``trainer`` replaces it per iteration when given. ``env``
    overrides ``config.env_id`` with a factory. ``executor`` runs simulation jobs (default:
    sequential here). ``resume`` continues from ``run_dir/simopt.json``.
    """

    def __init__(
        self,
        config: SimOptConfig,
        run_dir: str | os.PathLike,
        *,
        reality: RealSystem,
        policy: PolicyFactory | None = None,
        env: str | EnvFactory | None = None,
        trainer: Trainer | None = None,
        executor: Executor | None = None,
        resume: bool = False,
        state_setter: Callable | None = None,
        log: Callable[[str], None] | None = print,
    ):
        if policy is None and trainer is None and config.mode == "closed_loop":
            raise ValueError("closed-loop SimOpt needs a policy factory or a trainer")
        self.config = config
        self.run_dir = Path(run_dir)
        self.reality = reality
        self.policy = policy
        self.env = env if env is not None else config.env_id
        self.trainer = trainer
        self.executor = executor or LocalExecutor()
        self.state_setter = state_setter
        self.log = log or (lambda s: None)
        self.history: list[dict[str, Any]] = []
        self.completed = 0
        self.truth = dict(reality.truth) if getattr(reality, "truth", None) else None
        self._setup(resume)

    # ---- setup / checkpoint -------------------------------------------------------------
    def _setup(self, resume: bool) -> None:
        cfg = self.config
        probe = make_env(self.env, cfg.sim_env_kwargs)
        try:
            self.space = param_space(probe, cfg.params)
            self.refs = param_refs(probe, cfg.params)
            self._nominal = {
                r.param.name: r.param.nominal for r in self.refs if r.index is not None
            }
            obs, _ = probe.reset(seed=0)
            self.sim_layout = obs_layout_of(probe, obs_vector(probe, obs).shape[0])
            if cfg.prior_mean is not None or cfg.prior_std is not None:
                if cfg.prior_mean is None or cfg.prior_std is None:
                    raise ValueError("give both prior_mean and prior_std, or neither")
                mean0 = np.asarray(cfg.prior_mean, dtype=np.float64)
                std0 = np.asarray(cfg.prior_std, dtype=np.float64)
            else:  # the training prior: the env's default randomization, or cfg.prior ranges
                prior_env = make_env(
                    self.env, {**cfg.sim_env_kwargs, "randomization": cfg.prior_preset}
                )
                try:
                    mean0, std0 = prior_moments(prior_env, cfg.params, cfg.prior)
                finally:
                    prior_env.close()
        finally:
            probe.close()
        if mean0.shape != (self.space.dim,) or std0.shape != (self.space.dim,) or np.any(std0 <= 0):
            raise ValueError(
                f"prior needs {self.space.dim} means and positive stds, got {mean0} and {std0}"
            )
        self.prior_mean, self.prior_std = mean0, std0
        self.opt = make_optimizer(
            cfg.optimizer,
            self.space,
            mean0,
            np.diag(std0**2),
            seed=cfg.seed,
            popsize=cfg.samples,
            min_std=cfg.min_std_frac * std0,
            **({"epsilon": cfg.epsilon, "min_temperature": cfg.min_temperature}
               if cfg.optimizer == "reps" else {}),
        )  # fmt: skip
        self.disc = Discrepancy.from_dict(cfg.discrepancy)
        self.rng = np.random.default_rng([cfg.seed, 7])
        ckpt = self.run_dir / CHECKPOINT
        if ckpt.exists() and not resume:
            raise FileExistsError(
                f"{self.run_dir} already holds a SimOpt run ({CHECKPOINT}); resume it or choose "
                "another directory"
            )
        if ckpt.exists():
            self._load(ckpt)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def _load(self, path: Path) -> None:
        state = json.loads(path.read_text())
        old = SimOptConfig.from_dict(state["config"])
        for key in ("params", "optimizer", "samples", "mode", "env_id"):
            if getattr(old, key) != getattr(self.config, key):
                raise ValueError(
                    f"cannot resume {path}: it was run with {key}={getattr(old, key)!r}, this run "
                    f"has {getattr(self.config, key)!r}"
                )
        if self.config.iterations < old.iterations:
            self.config.iterations = old.iterations
        self.opt.load_state_dict(state["optimizer"])
        self.disc = Discrepancy.from_dict(state["discrepancy"])
        self.history = state["history"]
        self.completed = int(state["completed"])
        self.rng.bit_generator.state = state["rng"]
        self.prior_mean = np.asarray(state["prior"]["mean"])
        self.prior_std = np.asarray(state["prior"]["std"])
        if state.get("truth") and not self.truth:
            self.truth = state["truth"]
        self.log(f"resumed {path}: {self.completed} iteration(s) done")

    def _save(self) -> None:
        state = {
            "format": "simenvs.simopt.checkpoint",
            "version": 1,
            "config": self.config.to_dict(),
            "space": self.space.to_dict(),
            "prior": {"mean": self.prior_mean.tolist(), "std": self.prior_std.tolist()},
            "truth": self.truth,
            "reality": getattr(self.reality, "name", type(self.reality).__name__),
            "completed": self.completed,
            "optimizer": self.opt.state_dict(),
            "discrepancy": self.disc.to_dict(),
            "rng": self.rng.bit_generator.state,
            "history": self.history,
        }
        _atomic_json(self.run_dir / CHECKPOINT, state)
        dist = self.opt.distribution()
        _atomic_json(
            self.run_dir / "distribution.json",
            {
                "spec": self.spec_fragment(),
                "gaussian": dist.to_dict(),
                "bounds": self.space.to_dict(),
                "iteration": self.completed,
            },
        )

    # ---- one iteration ------------------------------------------------------------------
    def spec_fragment(self) -> dict[str, Any]:
        """The current distribution as a randomization-spec fragment (merge over the env's):
        a joint Gaussian over scalar params, per-vector normals for element params."""
        return spec_fragment(self.refs, self.opt.mean, self.opt.cov)

    def _policy_for(self, iteration: int) -> PolicyFactory | None:
        if self.trainer is None:
            return self.policy
        req = TrainRequest(
            iteration=iteration,
            distribution=self.opt.distribution(),
            space=self.space,
            spec=self.spec_fragment(),
            run_dir=self.run_dir / f"policy_{iteration:03d}",
            previous=self.policy,
        )
        self.policy = self.trainer(req)
        return self.policy

    def _fields(self, real: Rollouts) -> list[str]:
        sim = {n: s for n, s, _ in self.sim_layout}
        rl = {n: s for n, s, _ in real.obs_layout}
        if self.disc.fields is not None:
            fields = list(self.disc.fields)
        else:
            fields = [n for n in rl if n in sim]
        bad = [f for f in fields if f not in sim or f not in rl or sim[f] != rl[f]]
        if bad or not fields:
            raise ValueError(
                f"observation fields {bad or fields} are not shared by sim {self.sim_layout} and "
                f"real {real.obs_layout} data (same name and size needed)"
            )
        return fields

    def _jobs(self, real: Rollouts, episodes: Sequence[int], x: np.ndarray) -> list[Job]:
        cfg = self.config
        values = expand_params(
            dict(zip(self.space.names, (float(v) for v in x))),
            base={**self._nominal, **cfg.fixed_params},
        )
        jobs = []
        for i in episodes:
            ep = real.episodes[i]
            layout = {k: v for k, v in ep.params.items() if k.startswith("layout.")}
            seed = ep.seed if ep.seed is not None else cfg.seed * 1000 + i
            replay = None
            if cfg.mode == "replay":
                replay = Replay(
                    actions=ep.actions,
                    obs=ep.obs,
                    sim_state=ep.sim_state,
                    sim_state_spec=real.sim_state_spec,
                    reset_every=cfg.replay_reset_every,
                    state_setter=self.state_setter,
                )
            jobs.append(Job({**layout, **values}, seed=seed, max_steps=len(ep), replay=replay))
        return jobs

    def _costs(
        self, task: RolloutTask, real: Rollouts, episodes: Sequence[int], xs: np.ndarray
    ) -> np.ndarray:
        jobs = [j for x in xs for j in self._jobs(real, episodes, x)]
        sims: list[Episode] = self.executor(task, jobs)
        if len(sims) != len(jobs):
            raise RuntimeError(f"executor returned {len(sims)} episodes for {len(jobs)} jobs")
        fields = self._fields_cache
        sim_cols, real_cols = _select(self.sim_layout, fields), _select(real.obs_layout, fields)
        sizes = {n: size for n, size, _ in real.obs_layout}
        layout = [(f, sizes[f], "") for f in fields]
        disc = self.disc
        if disc.fields is None:
            disc = Discrepancy.from_dict({**disc.to_dict(), "fields": list(fields)})
        costs = np.empty(len(xs))
        k = 0
        for s in range(len(xs)):
            d = []
            for i in episodes:
                ep, sim = real.episodes[i], sims[k]
                k += 1
                d.append(
                    disc(sim.obs[:, sim_cols], ep.obs[:, real_cols], layout, sim.time, ep.time)
                )
            costs[s] = float(np.mean(d))
        return costs

    def _iteration(self, it: int) -> dict[str, Any]:
        cfg = self.config
        t0 = time.perf_counter()
        before = self.opt.distribution()
        policy = self._policy_for(it)
        real = self.reality.collect(
            policy, cfg.real_episodes, iteration=it, seed=cfg.real_seed + 1000 * it
        )
        if not real.episodes:
            raise RuntimeError(f"reality {getattr(self.reality, 'name', '')} returned no episodes")
        save_rollouts(real, self.run_dir / "real" / f"iter_{it:03d}.npz")
        self._fields_cache = self._fields(real)
        if cfg.auto_scale and self.disc.scale is None:
            cols = _select(real.obs_layout, self._fields_cache)
            data = np.concatenate([e.obs[:, cols] for e in real.episodes])
            spread = data.std(axis=0)
            spread = np.maximum(spread, 1e-3 * max(float(spread.max()), 1e-12))
            self.disc = Discrepancy.from_dict(
                {
                    **self.disc.to_dict(),
                    "fields": list(self._fields_cache),
                    "scale": spread.tolist(),
                }
            )
        task = RolloutTask(
            env=self.env,
            policy=policy,
            env_kwargs=dict(cfg.sim_env_kwargs),
            fixed_params=dict(cfg.fixed_params),
        )
        all_eps = list(range(len(real.episodes)))
        d_before = float(self._costs(task, real, all_eps, before.mean[None])[0])
        updates = []
        for _ in range(cfg.updates):
            eps = all_eps
            if cfg.episodes_per_sample is not None and cfg.episodes_per_sample < len(all_eps):
                eps = sorted(
                    self.rng.choice(all_eps, cfg.episodes_per_sample, replace=False).tolist()
                )
            xs = self.opt.ask(cfg.samples)
            costs = self._costs(task, real, eps, xs)
            info = self.opt.tell(xs, costs)
            updates.append({**info, "episodes": eps})
        after = self.opt.distribution()
        d_after = float(self._costs(task, real, all_eps, after.mean[None])[0])
        entry = {
            "iteration": it,
            "before": {"mean": dict(zip(before.names, before.mean.tolist())),
                       "std": dict(zip(before.names, before.std.tolist()))},
            "after": {"mean": dict(zip(after.names, after.mean.tolist())),
                      "std": dict(zip(after.names, after.std.tolist()))},
            "cov": after.cov.tolist(),
            "real_success": real.success_rate(),
            "real_episodes": len(real.episodes),
            "real_file": f"real/iter_{it:03d}.npz",
            "discrepancy_before": d_before,
            "discrepancy_after": d_after,
            "updates": updates,
            "seconds": time.perf_counter() - t0,
        }  # fmt: skip
        if self.truth:
            entry["rel_error"] = {
                n: abs(after.mean[i] - self.truth[n]) / max(abs(self.truth[n]), 1e-12)
                for i, n in enumerate(self.space.names)
                if n in self.truth
            }
        return entry

    # ---- public -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run the remaining iterations; returns ``summary()``."""
        for it in range(self.completed, self.config.iterations):
            entry = self._iteration(it)
            self.history.append(entry)
            self.completed = it + 1
            self._save()
            if self.config.plot:
                self.plot()
            self.log(self._line(entry))
        return self.summary()

    def _line(self, e: Mapping[str, Any]) -> str:
        parts = [
            f"{n.split('.', 1)[-1]}={e['after']['mean'][n]:.4g}+-{e['after']['std'][n]:.2g}"
            for n in self.space.names
        ]
        err = e.get("rel_error")
        tail = (" err " + " ".join(f"{100 * v:.1f}%" for v in err.values())) if err else ""
        succ = e["real_success"]
        s = "n/a" if succ is None else f"{100 * succ:.0f}%"
        return (
            f"iter {e['iteration']}: D {e['discrepancy_before']:.4g}"
            f" -> {e['discrepancy_after']:.4g}"
            f" | {' '.join(parts)}{tail} | real success {s} | {e['seconds']:.1f}s"
        )

    def summary(self) -> dict[str, Any]:
        dist = self.opt.distribution()
        out: dict[str, Any] = {
            "iterations": self.completed,
            "mean": dict(zip(dist.names, dist.mean.tolist())),
            "std": dict(zip(dist.names, dist.std.tolist())),
            "prior_mean": dict(zip(dist.names, self.prior_mean.tolist())),
            "prior_std": dict(zip(dist.names, self.prior_std.tolist())),
            "truth": self.truth,
            "run_dir": str(self.run_dir),
        }
        if self.truth:
            names = [n for n in dist.names if n in self.truth]
            out["prior_rel_error"] = {
                n: abs(self.prior_mean[i] - self.truth[n]) / max(abs(self.truth[n]), 1e-12)
                for i, n in enumerate(dist.names)
                if n in names
            }
            out["rel_error"] = {
                n: abs(dist.mean[i] - self.truth[n]) / max(abs(self.truth[n]), 1e-12)
                for i, n in enumerate(dist.names)
                if n in names
            }
        return out

    def plot(self) -> Path:
        from .plots import plot_history

        return plot_history(
            self.history,
            list(self.space.names),
            self.run_dir / "simopt.png",
            truth=self.truth,
            title=f"SimOpt {self.config.env_id} vs {getattr(self.reality, 'name', 'reality')}",
        )
