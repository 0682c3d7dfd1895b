"""rl_zoo3 ``--conf-file simenvs.agents.zoo_ppo``: the shipped PPO configs."""

from .zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("ppo")
