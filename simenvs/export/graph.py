"""The torch module that gets exported: normalize → deterministic actor → clip/unscale → physical.

SB3 applies VecNormalize and the action clip/unscale outside the network; this module puts
them back in, op for op in the same dtype and order as SB3/numpy, so the exported graph
matches ``predict(deterministic=True)`` to float32 round-off. The actor is called through its
sub-modules (features extractor, MLP, action head) rather than ``policy._predict``: the
distribution objects SB3 builds there are neither needed nor traceable.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    DiagGaussianDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn


@dataclass(frozen=True)
class NormStats:
    """VecNormalize statistics of one input (shape of the input, or scalar)."""

    mean: np.ndarray
    var: np.ndarray
    clip: float
    epsilon: float


class ObsNormalizer(nn.Module):
    """``clip((x - mean) / sqrt(var + eps))`` in float64, then float32: VecNormalize exactly."""

    def __init__(self, stats: NormStats):
        super().__init__()
        std = np.sqrt(np.asarray(stats.var, dtype=np.float64) + stats.epsilon)
        self.register_buffer("mean", torch.as_tensor(np.asarray(stats.mean, dtype=np.float64)))
        self.register_buffer("std", torch.as_tensor(std))
        self.clip = float(stats.clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x.to(torch.float64) - self.mean) / self.std
        return torch.clamp(y, -self.clip, self.clip).to(torch.float32)


class DeterministicActor(nn.Module):
    """The mode of the policy's action distribution, before SB3's numpy post-processing."""

    def __init__(self, policy: BasePolicy):
        super().__init__()
        self.kind = actor_kind(policy)
        self.policy = _copy_without_distributions(policy).to("cpu").eval()
        self.tanh = False
        if self.kind == "actor_critic":
            dist = policy.action_dist
            if isinstance(dist, StateDependentNoiseDistribution):
                self.tanh = dist.bijector is not None
            elif not isinstance(dist, DiagGaussianDistribution):
                raise TypeError(
                    f"only continuous (Box) actions can be exported, got {type(dist).__name__}"
                )

    def forward(self, obs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        p = self.policy
        if self.kind == "actor_critic":
            x = preprocess_obs(obs, p.observation_space, normalize_images=p.normalize_images)
            latent = p.mlp_extractor.forward_actor(p.pi_features_extractor(x))
            action = p.action_net(latent)
            return torch.tanh(action) if self.tanh else action
        actor = p.actor
        x = preprocess_obs(obs, actor.observation_space, normalize_images=actor.normalize_images)
        features = actor.features_extractor(x)
        if self.kind == "sac":
            return torch.tanh(actor.mu(actor.latent_pi(features)))
        return actor.mu(features)  # TD3/DDPG: mu ends in tanh


def _copy_without_distributions(policy: BasePolicy) -> BasePolicy:
    """Deep copy (export must not move or alter the caller's model), leaving out the action
    distribution objects: the forward pass here does not use them, and after gSDE sampling
    they hold non-leaf tensors that cannot be deep-copied."""
    owners = [policy, getattr(policy, "actor", None)]
    memo = {id(o.action_dist): None for o in owners if getattr(o, "action_dist", None)}
    return copy.deepcopy(policy, memo)


def actor_kind(policy: BasePolicy) -> str:
    """ "actor_critic" (PPO/A2C), "sac" or "td3" (TD3/DDPG); other policies are refused."""
    if isinstance(policy, ActorCriticPolicy):
        return "actor_critic"
    if isinstance(policy, SACPolicy):
        return "sac"
    if isinstance(policy, TD3Policy):
        return "td3"
    raise TypeError(
        f"cannot export {type(policy).__name__}: supported are ActorCriticPolicy (PPO, A2C), "
        "SACPolicy (SAC) and TD3Policy (TD3, DDPG)"
    )


class ActionPostprocess(nn.Module):
    """SB3's predict() post-processing, then the env's affine map to physical units."""

    def __init__(
        self, space: spaces.Box, squash: bool, scale: np.ndarray, offset: np.ndarray
    ) -> None:
        super().__init__()
        low = np.asarray(space.low, dtype=np.float32)
        high = np.asarray(space.high, dtype=np.float32)
        self.squash = bool(squash)
        self.register_buffer("low", torch.as_tensor(low))
        self.register_buffer("high", torch.as_tensor(high))
        self.register_buffer("span", torch.as_tensor(high - low))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))
        self.register_buffer("offset", torch.as_tensor(np.asarray(offset, dtype=np.float32)))

    def forward(self, action: torch.Tensor) -> torch.Tensor:
        if self.squash:  # BasePolicy.unscale_action, same op order
            action = self.low + (0.5 * (action + 1.0) * self.span)
        else:  # np.clip(action, low, high)
            action = torch.minimum(torch.maximum(action, self.low), self.high)
        return action * self.scale + self.offset


class ExportedPolicy(nn.Module):
    """Positional raw inputs (in ``input_names`` order) → physical action (batch, n)."""

    def __init__(
        self,
        policy: BasePolicy,
        input_names: list[str],
        norm: dict[str, NormStats],
        post: ActionPostprocess,
        dict_obs: bool,
    ) -> None:
        super().__init__()
        self.input_names = list(input_names)
        self.dict_obs = dict_obs
        self.normalizers = nn.ModuleList(
            ObsNormalizer(norm[name]) if name in norm else nn.Identity() for name in input_names
        )
        self.actor = DeterministicActor(policy)
        self.post = post

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        values = [norm(x) for norm, x in zip(self.normalizers, inputs)]
        obs = dict(zip(self.input_names, values)) if self.dict_obs else values[0]
        return self.post(self.actor(obs))
