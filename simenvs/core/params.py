"""Re-exports for tasks: parameter definitions and the scale-param factory."""

from simenvs.randomization.params import ParamDef, check_value, scale_param

__all__ = ["ParamDef", "check_value", "scale_param"]
