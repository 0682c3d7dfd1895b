"""rl_zoo3 ``--conf-file simenvs.agents.zoo_sac``: the shipped SAC configs."""

from .zoo import zoo_hyperparams

hyperparams = zoo_hyperparams("sac")
