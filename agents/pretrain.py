"""Warm start from a task's scripted expert: behaviour cloning + DAgger, before RL.

Every simenvs task ships a privileged scripted expert (``simenvs.agents.experts``). Cloning
it into the state-only policy and then fine-tuning with RL reaches high success in minutes
instead of hours on 2 cores; the learned policy still sees only its own observations.

Steps (config section ``pretrain``)::

    pretrain:
      episodes: 40          # expert rollouts for behaviour cloning
      dagger_iters: 2       # DAgger rounds: run the policy, label its states with the expert
      dagger_episodes: 20
      epochs: 30            # supervised epochs per round
      batch_size: 256
      learning_rate: 1e-3
      value_epochs: 20      # (PPO) fit the critic to the cloned policy's returns

DAgger labels the policy's own states with the expert's action, so the expert must be able to
act from states it did not steer into; a stateful expert that mirrors its own commands gets
the executed action through an optional ``expert.executed(action)`` method.

The actor is fit by MSE between its deterministic action and the expert's (both in the
normalized action space); VecNormalize observation statistics are updated from the same data
first, and then frozen (``freeze_normalization``, default on). Measured on Grasp: the cloned
policy reached 90 % validation success; the same weights with the running statistics left
after 121k PPO steps reached 10 % -- the drift of the statistics alone undid the cloning.

DAgger aggregation across warm starts (``save_data`` / ``init_data``, off by default): a run
writes its final aggregate (raw observations + expert labels, ``.npz``, read without pickle)
and a later fine-tune of the same policy starts its aggregate from it instead of from nothing,
so its first fit on a few expert episodes of a new distribution does not forget the states it
learned before. Sound only when the expert's label of a state is the same in both
distributions (a memoryless expert blind to the randomized parameters, e.g. RooftopLanding's).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from .vec import make_env

__all__ = ["PretrainConfig", "pretrain_from_expert", "save_dataset", "load_dataset"]


@dataclass
class PretrainConfig:
    episodes: int = 40
    dagger_iters: int = 2
    dagger_episodes: int = 20
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    value_epochs: int = 20
    max_samples: int = 200_000
    seed: int = 2_000_000  # expert/DAgger episodes use seeds from here (never eval seeds)
    rollout_envs: int = 4  # envs stepped in lock-step so the policy acts on batches
    # Freeze VecNormalize statistics afterwards (see module docstring): the cloned policy is a
    # function of the *normalized* observation, so RL rollouts moving the running mean/var
    # silently change what it does.
    freeze_normalization: bool = True
    # DAgger aggregation across warm starts (off when empty): ``save_data`` writes the final
    # aggregate (raw observations + expert labels, ``.npz``) there; ``init_data`` starts the
    # aggregate from such a file (its last ``max_samples``). Only sound for experts whose
    # labels do not depend on the distribution (e.g. a memoryless function of the observation).
    init_data: str = ""
    save_data: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PretrainConfig | None:
        if not d:
            return None
        names = set(cls.__dataclass_fields__) - {"extra"}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"pretrain: unknown keys {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**{k: (float(v) if k == "learning_rate" else v) for k, v in d.items()})


def _stack(obs: list[Any]) -> Any:
    if isinstance(obs[0], dict):
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    return np.stack(obs)


def _rollouts(
    envs: list[Any],
    experts: list[Any],
    policy_act: Any,
    episodes: int,
    seed: int,
) -> tuple[list[Any], list[np.ndarray], list[list[float]], list[bool]]:
    """Episodes driven by the expert (``policy_act`` None) or by the policy (DAgger), every
    visited state labelled with the expert's action. The envs step in lock-step so the policy
    acts on a batch; episode k uses seed ``seed + k``. Returns per-episode-ordered data."""
    n = len(envs)
    low, high = envs[0].action_space.low, envs[0].action_space.high
    queues = [list(range(i, episodes, n)) for i in range(n)]
    cur: list[int | None] = [None] * n
    obs: list[Any] = [None] * n
    data: dict[int, tuple[list, list, list]] = {}
    succ: dict[int, bool] = {}

    def start(i: int) -> None:
        if not queues[i]:
            cur[i] = None
            return
        k = queues[i].pop(0)
        cur[i] = k
        obs[i], _ = envs[i].reset(seed=seed + k)
        experts[i].reset()
        data[k] = ([], [], [])

    for i in range(n):
        start(i)
    while any(c is not None for c in cur):
        active = [i for i in range(n) if cur[i] is not None]
        labels = [
            np.clip(np.asarray(experts[i].act(obs[i]), np.float32), low, high) for i in active
        ]
        if policy_act is None:
            actions = labels
        else:
            actions = list(policy_act(_stack([obs[i] for i in active])))
        for j, i in enumerate(active):
            k = cur[i]
            data[k][0].append(obs[i])
            data[k][1].append(labels[j])
            if policy_act is not None and hasattr(experts[i], "executed"):
                experts[i].executed(actions[j])  # stateful experts track what really ran
            obs[i], r, term, trunc, info = envs[i].step(actions[j])
            data[k][2].append(float(r))
            if term or trunc:
                succ[k] = bool(info.get("is_success", False))
                start(i)
    order = sorted(data)
    obs_l = [o for k in order for o in data[k][0]]
    act_l = [a for k in order for a in data[k][1]]
    return obs_l, act_l, [data[k][2] for k in order], [succ[k] for k in order]


def save_dataset(path: str | Path, obs: list[Any], acts: list[np.ndarray]) -> Path:
    """Write a DAgger aggregate (raw, un-normalized observations and expert actions) as
    ``.npz``; dict observations as ``obs.KEY`` arrays. Atomic (a temporary file renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"act": np.stack(acts).astype(np.float32)}
    o = _stack(obs)
    if isinstance(o, dict):
        arrays.update({f"obs.{k}": v for k, v in o.items()})
    else:
        arrays["obs"] = o
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_dataset(path: str | Path) -> tuple[list[Any], list[np.ndarray]]:
    """A ``save_dataset`` file as (per-sample observations, per-sample actions) lists."""
    with np.load(Path(path), allow_pickle=False) as z:
        acts = z["act"]
        if "obs" in z.files:
            obs: list[Any] = list(z["obs"])
        else:
            keys = [f[4:] for f in z.files if f.startswith("obs.")]
            if not keys:
                raise ValueError(f"{path}: no 'obs' or 'obs.KEY' arrays (has {z.files})")
            cols = {k: z[f"obs.{k}"] for k in keys}
            obs = [{k: cols[k][i] for k in keys} for i in range(len(acts))]
    if len(obs) != len(acts):
        raise ValueError(f"{path}: {len(obs)} observations but {len(acts)} actions")
    return obs, list(acts)


def _obs_tensor(model: Any, obs: Any) -> Any:
    t, _ = model.policy.obs_to_tensor(obs)
    return t


def _update_obs_rms(vn: Any, obs: Any) -> None:
    if isinstance(obs, dict):
        for k in vn.norm_obs_keys:
            vn.obs_rms[k].update(obs[k])
    else:
        vn.obs_rms.update(obs)


def _normalize(model: Any, obs: Any) -> Any:
    vn = model.get_vec_normalize_env()
    return vn.normalize_obs(obs) if vn is not None else obs


def _index(obs: Any, idx: np.ndarray) -> Any:
    if isinstance(obs, dict):
        return {k: v[idx] for k, v in obs.items()}
    return obs[idx]


def _fit_actor(model: Any, obs: Any, acts: np.ndarray, cfg: PretrainConfig) -> float:
    from stable_baselines3 import SAC

    policy = model.policy
    params = model.actor.parameters() if isinstance(model, SAC) else policy.parameters()
    opt = th.optim.Adam(params, lr=cfg.learning_rate)
    n = len(acts)
    target_all = th.as_tensor(acts, device=model.device)
    if isinstance(model, SAC):  # squashed Gaussian: tanh(mean) must reach the target
        target_all = target_all.clamp(-0.995, 0.995)
    policy.set_training_mode(True)
    loss_v = float("nan")
    rng = np.random.default_rng(0)
    for _ in range(cfg.epochs):
        perm = rng.permutation(n)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            obs_t = _obs_tensor(model, _index(obs, idx))
            pred = policy._predict(obs_t, deterministic=True)
            loss = th.nn.functional.mse_loss(pred, target_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_v = float(loss.detach())
    policy.set_training_mode(False)
    return loss_v


def _fit_value(model: Any, obs: Any, returns: np.ndarray, cfg: PretrainConfig) -> float:
    """PPO: regress the critic on discounted returns of the cloned policy (normalized reward)."""
    policy = model.policy
    opt = th.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
    target_all = th.as_tensor(returns, dtype=th.float32, device=model.device)
    n = len(returns)
    rng = np.random.default_rng(1)
    loss_v = float("nan")
    policy.set_training_mode(True)
    for _ in range(cfg.value_epochs):
        perm = rng.permutation(n)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            values = policy.predict_values(_obs_tensor(model, _index(obs, idx))).flatten()
            loss = th.nn.functional.mse_loss(values, target_all[idx])
            opt.zero_grad()
            # only the value head/critic should move: zero actor grads before stepping
            loss.backward()
            for name, p in policy.named_parameters():
                if p.grad is not None and ("action_net" in name or "log_std" in name):
                    p.grad = None
                if p.grad is not None and "policy_net" in name:
                    p.grad = None
            opt.step()
            loss_v = float(loss.detach())
    policy.set_training_mode(False)
    return loss_v


def _discounted(rewards: list[list[float]], gamma: float, scale: float) -> np.ndarray:
    out = []
    for ep in rewards:
        g, rets = 0.0, []
        for r in reversed(ep):
            g = r * scale + gamma * g
            rets.append(g)
        out.extend(reversed(rets))
    return np.asarray(out, dtype=np.float32)


def pretrain_from_expert(
    model: Any,
    env_id: str,
    env_kwargs: dict[str, Any],
    cfg: PretrainConfig,
    verbose: int = 1,
) -> dict[str, Any]:
    """Behaviour cloning + DAgger of the env's scripted expert into ``model``'s policy."""
    from stable_baselines3 import PPO

    from .experts import make as make_expert

    t0 = time.time()
    envs = [make_env(env_id, env_kwargs) for _ in range(max(1, cfg.rollout_envs))]
    experts = [make_expert(e) for e in envs]
    vn = model.get_vec_normalize_env()
    all_obs: list[Any] = []
    all_act: list[np.ndarray] = []
    report: dict[str, Any] = {"rounds": []}
    if cfg.init_data:  # DAgger aggregation across warm starts (see PretrainConfig)
        all_obs, all_act = load_dataset(cfg.init_data)
        all_obs, all_act = all_obs[-cfg.max_samples :], all_act[-cfg.max_samples :]
        report["init_samples"] = len(all_act)

    def policy_act(o: Any) -> np.ndarray:
        with th.no_grad():
            a = model.policy._predict(_obs_tensor(model, _normalize(model, o)), deterministic=True)
        a = a.cpu().numpy()
        space = envs[0].action_space
        if model.policy.squash_output:  # SAC: tanh output in [-1, 1] -> action space
            return model.policy.unscale_action(a)
        return np.clip(a, space.low, space.high)  # as SB3 clips PPO's Gaussian

    env_steps = 0
    last_rewards: list[list[float]] = []
    last_obs: list[Any] = []
    try:
        for it in range(cfg.dagger_iters + 1):
            first = it == 0
            obs_l, act_l, rewards, succ = _rollouts(
                envs,
                experts,
                None if first else policy_act,
                cfg.episodes if first else cfg.dagger_episodes,
                cfg.seed + 10_000 * it,
            )
            env_steps += len(obs_l)
            all_obs.extend(obs_l)
            all_act.extend(act_l)
            all_obs, all_act = all_obs[-cfg.max_samples :], all_act[-cfg.max_samples :]
            if vn is not None and vn.norm_obs:  # statistics as VecNormalize would gather them
                _update_obs_rms(vn, _stack(obs_l))
            obs_n = _normalize(model, _stack(all_obs))
            loss = _fit_actor(model, obs_n, np.stack(all_act), cfg)
            rnd = {
                "round": it,
                "source": "expert" if first else "policy (DAgger)",
                "episodes": len(succ),
                "success": float(np.mean(succ)) if succ else None,
                "mean_return": float(np.mean([sum(r) for r in rewards])),
                "samples": len(all_act),
                "actor_mse": loss,
            }
            report["rounds"].append(rnd)
            last_rewards, last_obs = rewards, obs_l
            if verbose:
                print(
                    f"[pretrain] round {it} ({rnd['source']}): success {rnd['success']:.2f} "
                    f"over {rnd['episodes']} episodes, {rnd['samples']} samples, mse {loss:.4f}"
                )
        if isinstance(model, PPO) and cfg.value_epochs > 0:
            # critic targets from the latest on-policy round (or the expert's if no DAgger)
            scale = 1.0
            if vn is not None and vn.norm_reward:
                ret, rets = 0.0, []
                for ep in last_rewards:
                    for r in ep:
                        ret = ret * vn.gamma + r
                        rets.append(ret)
                    ret = 0.0
                vn.ret_rms.update(np.asarray(rets))
                scale = 1.0 / float(np.sqrt(vn.ret_rms.var + vn.epsilon))
            targets = _discounted(last_rewards, model.gamma, scale)
            report["value_mse"] = _fit_value(
                model, _normalize(model, _stack(last_obs)), targets, cfg
            )
    finally:
        for e in envs:
            e.close()
    if cfg.save_data:
        save_dataset(cfg.save_data, all_obs, all_act)
        report["saved_samples"] = len(all_act)
    if vn is not None and cfg.freeze_normalization:
        vn.training = False  # obs and return statistics stay as pretraining left them
        report["normalization_frozen"] = True
    report["wall_time_s"] = round(time.time() - t0, 2)
    report["env_steps"] = env_steps  # expert + DAgger rollouts (not counted in num_timesteps)
    return report
