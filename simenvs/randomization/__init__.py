"""Domain randomization: declarative specs, seeded streams, and the modders that apply them."""

from simenvs.randomization.distributions import (
    Categorical,
    Constant,
    Distribution,
    LogUniform,
    MultivariateNormal,
    Normal,
    TruncatedNormal,
    Uniform,
    distribution_from_dict,
)
from simenvs.randomization.params import GROUPS, ParamDef, check_value, scale_param
from simenvs.randomization.spec import BoundSpec, RandomizationSpec
from simenvs.randomization.streams import STREAMS, Streams

__all__ = [
    "GROUPS",
    "STREAMS",
    "BoundSpec",
    "Categorical",
    "Constant",
    "Distribution",
    "LogUniform",
    "MultivariateNormal",
    "Normal",
    "ParamDef",
    "RandomizationSpec",
    "Streams",
    "TruncatedNormal",
    "Uniform",
    "check_value",
    "distribution_from_dict",
    "scale_param",
]
