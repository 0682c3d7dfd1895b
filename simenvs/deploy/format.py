"""The on-disk contract shared by `simenvs.export` (writer) and `simenvs.deploy` (reader).

Kept here, in the dependency-free runtime package, so that the robot side owns the format and
the exporter imports it (never the other way round).

An export directory holds::

    policy.json   metadata sidecar (the keys below); also mirrored into the ONNX metadata_props,
                  one entry per top-level key, each value JSON-encoded
    policy.onnx   the graph (format "onnx" or "both")
    policy.pt     TorchScript module (format "torchscript" or "both"); metadata in its extra
                  file "metadata.json"

Graph contract: inputs are named (``obs`` for a Box observation, the Dict keys otherwise), each
with a leading batch dimension; vector inputs are float32 *raw* observations (normalization is
inside the graph); image inputs are CHW with the dtype the network was trained on (uint8 0..255
for SB3 image spaces; the graph divides by 255). The single output ``action`` is float32
(batch, n) in physical units: clipped/unscaled exactly as SB3's ``predict`` and then mapped
through the env's ``action_layout`` (``physical = env_action * scale + offset``).
"""

from __future__ import annotations

FORMAT_VERSION = 1
METADATA_FILE = "policy.json"
ONNX_FILE = "policy.onnx"
TORCHSCRIPT_FILE = "policy.pt"
TORCHSCRIPT_METADATA = "metadata.json"
SINGLE_INPUT_NAME = "obs"
OUTPUT_NAME = "action"

# Top-level metadata keys (every export has all of them; values may be null when unknown).
METADATA_KEYS = (
    "format_version",
    "simenvs_version",
    "env_id",
    "env_kwargs",
    "control_hz",
    "inputs",
    "action",
    "images",
    "normalization",
    "randomization",
    "source",
    "exported_at",
)
