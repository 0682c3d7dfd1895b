"""Serialize an ExportedPolicy to ONNX (with metadata_props) and TorchScript (with extra files)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from simenvs.deploy.format import OUTPUT_NAME, TORCHSCRIPT_METADATA


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_onnx(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    input_names: list[str],
    path: Path,
    metadata: dict[str, Any],
    *,
    dynamo: bool = True,
    opset: int | None = None,
) -> None:
    """Export with a dynamic batch dimension; every metadata key goes into metadata_props (JSON).

    ``dynamo=True`` is torch's default exporter since 2.9 (needs onnxscript); ``dynamo=False``
    selects the legacy TorchScript-based one, which is ~10x faster to run but deprecated.
    """
    kwargs: dict[str, Any] = {
        "input_names": list(input_names),
        "output_names": [OUTPUT_NAME],
        "dynamo": dynamo,
    }
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamo:
        batch = torch.export.Dim("batch")
        kwargs["dynamic_shapes"] = {"inputs": tuple({0: batch} for _ in input_names)}
        kwargs["external_data"] = False
        kwargs["verbose"] = False
    else:
        axes = {name: {0: "batch"} for name in [*input_names, OUTPUT_NAME]}
        kwargs["dynamic_axes"] = axes
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example_inputs, str(path), **kwargs)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    model.producer_name = "simenvs.export"
    model.doc_string = (
        "Deterministic policy with observation normalization and action unscaling baked in; "
        "output 'action' is in physical units. See metadata_props."
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_torchscript(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    metadata: dict[str, Any],
) -> None:
    """Trace (positional inputs in metadata order) and save with the metadata as an extra file."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example_inputs)
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata)})
