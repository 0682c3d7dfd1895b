"""Run an exported policy with only numpy and onnxruntime: the code that goes on the robot.

Everything the simulator applied outside the network (observation normalization, action
clip/unscale, the map to physical units) is inside the graph, so this module only has to feed
the right arrays and refuse the wrong ones loudly: a silently mis-shaped or NaN observation on
hardware is a crash, not an exception.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from simenvs.deploy.format import (
    FORMAT_VERSION,
    METADATA_FILE,
    ONNX_FILE,
    OUTPUT_NAME,
)

_LATENCY_WINDOW = 8192


class ObservationError(ValueError):
    """An observation does not match the exported policy's input contract."""


class ExportFormatError(RuntimeError):
    """An export directory or file is incomplete, inconsistent or from another format version."""


@dataclass(frozen=True)
class InputSpec:
    """One named graph input, as recorded at export (shape excludes the batch dimension)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    kind: str  # "vector" or "image"
    layout: str | None  # "CHW" for images
    fields: tuple[tuple[str, int, str], ...]  # (name, size, unit) for vectors

    def describe(self) -> str:
        text = f"{self.dtype.name}{list(self.shape)}"
        if self.kind == "image":
            text += f" image in {self.layout} order"
        elif self.fields:
            text += " [" + ", ".join(f"{n}({s}) {u}".rstrip() for n, s, u in self.fields) + "]"
        return text

    def field_of(self, flat_index: int) -> str:
        """Name of the vector field holding this element, for error messages."""
        start = 0
        for name, size, _ in self.fields:
            if flat_index < start + size:
                return name if size == 1 else f"{name}[{flat_index - start}]"
            start += size
        return f"element {flat_index}"


def _input_specs(metadata: Mapping[str, Any]) -> tuple[InputSpec, ...]:
    specs = []
    for entry in metadata["inputs"]:
        fields = tuple(
            (f["name"], int(f["size"]), f.get("unit", "")) for f in entry.get("fields") or []
        )
        specs.append(
            InputSpec(
                name=entry["name"],
                shape=tuple(int(s) for s in entry["shape"]),
                dtype=np.dtype(entry["dtype"]),
                kind=entry.get("kind", "vector"),
                layout=entry.get("layout"),
                fields=fields,
            )
        )
    return tuple(specs)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stats_ms(samples_ns: np.ndarray) -> dict[str, float]:
    ms = samples_ns.astype(np.float64) / 1e6
    return {
        "n": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
    }


class Policy:
    """An exported policy: ``action = policy(obs)`` in physical units.

    ``obs`` is a numpy array (policies with one ``obs`` input) or a mapping from input name to
    array. Pass one observation (shapes as in ``policy.inputs``) to get an action of shape
    ``(n,)``, or a batch with a leading dimension to get ``(batch, n)``. Images are CHW.
    """

    def __init__(self, session: ort.InferenceSession, metadata: dict[str, Any], source: Path):
        self.session = session
        self.metadata = metadata
        self.source = source
        self.inputs = _input_specs(metadata)
        action = metadata["action"]
        self.action_names: tuple[str, ...] = tuple(action["names"])
        self.action_units: tuple[str, ...] = tuple(action["units"])
        self.action_low = np.asarray(action["low"], dtype=np.float32)
        self.action_high = np.asarray(action["high"], dtype=np.float32)
        self.control_hz: float | None = metadata.get("control_hz")
        self.env_id: str | None = metadata.get("env_id")
        self._by_name = {spec.name: spec for spec in self.inputs}
        self._check_graph()
        self._timings = np.zeros(_LATENCY_WINDOW, dtype=np.int64)
        self._n_calls = 0

    @property
    def calls(self) -> int:
        """Number of policy calls made so far (benchmark calls from latency(N) excluded)."""
        return self._n_calls

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        threads: int = 1,
        providers: list[str] | None = None,
        verify_checksum: bool = True,
    ) -> Policy:
        """Load an export directory (``policy.json`` + ``policy.onnx``) or a bare ``.onnx`` file.

        ``threads`` is onnxruntime's intra-op thread count: 1 gives the lowest and steadiest
        latency for control-sized networks and leaves the robot's other cores alone.
        """
        path = Path(path)
        if path.is_dir():
            meta_path = path / METADATA_FILE
            if not meta_path.is_file():
                raise ExportFormatError(
                    f"{path} has no {METADATA_FILE}; is it an export directory?"
                )
            metadata = json.loads(meta_path.read_text())
            onnx_name = (metadata.get("files") or {}).get("onnx", {}).get("path", ONNX_FILE)
            onnx_path = path / onnx_name
            if not onnx_path.is_file():
                raise ExportFormatError(
                    f"{path} has no {onnx_name}: export with format 'onnx' or 'both' "
                    "(simenvs.deploy runs ONNX only; TorchScript needs torch)"
                )
            expected = (metadata.get("files") or {}).get("onnx", {}).get("sha256")
            if verify_checksum and expected and _sha256(onnx_path) != expected:
                raise ExportFormatError(
                    f"{onnx_path} does not match the sha256 recorded in {meta_path} "
                    "(the model file and its metadata come from different exports)"
                )
            session = cls._session(onnx_path, threads, providers)
        elif path.is_file() and path.suffix == ".onnx":
            onnx_path = path
            session = cls._session(onnx_path, threads, providers)
            props = session.get_modelmeta().custom_metadata_map
            if "action" not in props:
                raise ExportFormatError(f"{path} carries no simenvs metadata in metadata_props")
            metadata = {key: json.loads(value) for key, value in props.items()}
        else:
            raise ExportFormatError(f"{path} is neither an export directory nor an .onnx file")
        version = metadata.get("format_version")
        if version != FORMAT_VERSION:
            raise ExportFormatError(
                f"{path} has format_version {version!r}; this runtime reads {FORMAT_VERSION}"
            )
        return cls(session, metadata, onnx_path)

    @staticmethod
    def _session(path: Path, threads: int, providers: list[str] | None) -> ort.InferenceSession:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(
            str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
        )

    def _check_graph(self) -> None:
        graph_inputs = {i.name for i in self.session.get_inputs()}
        declared = set(self._by_name)
        if graph_inputs != declared:
            raise ExportFormatError(
                f"graph inputs {sorted(graph_inputs)} differ from the metadata's {sorted(declared)}"
            )
        if OUTPUT_NAME not in {o.name for o in self.session.get_outputs()}:
            raise ExportFormatError(f"graph has no output named {OUTPUT_NAME!r}")

    # ------------------------------------------------------------------ inference
    def __call__(self, obs: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        start = time.perf_counter_ns()
        feed, batched = self._feed(obs)
        action = self.session.run([OUTPUT_NAME], feed)[0]
        if not np.isfinite(action).all():
            raise FloatingPointError(
                f"policy produced a non-finite action {action.tolist()} from finite inputs"
            )
        out = action if batched else action[0]
        self._timings[self._n_calls % _LATENCY_WINDOW] = time.perf_counter_ns() - start
        self._n_calls += 1
        return out

    def _feed(self, obs: np.ndarray | Mapping[str, np.ndarray]) -> tuple[dict, bool]:
        if isinstance(obs, Mapping):
            missing = [n for n in self._by_name if n not in obs]
            extra = [k for k in obs if k not in self._by_name]
            if missing or extra:
                raise ObservationError(
                    f"observation keys {sorted(map(str, obs))} do not match the policy inputs "
                    f"{list(self._by_name)} (missing {missing}, unexpected {extra})"
                )
            items = [(spec, obs[spec.name]) for spec in self.inputs]
        elif len(self.inputs) == 1:
            items = [(self.inputs[0], obs)]
        else:
            raise ObservationError(
                f"this policy takes a dict with keys {list(self._by_name)}, "
                f"got {type(obs).__name__}"
            )
        feed: dict[str, np.ndarray] = {}
        batch_sizes = {}
        for spec, value in items:
            feed[spec.name], batch_sizes[spec.name] = self._validate(spec, value)
        if len(set(batch_sizes.values())) > 1:
            raise ObservationError(
                "inputs mix single and batched observations or different batch sizes: "
                + ", ".join(
                    f"{n}: {'single' if b is None else f'batch of {b}'}"
                    for n, b in batch_sizes.items()
                )
            )
        batch = next(iter(batch_sizes.values()))
        return feed, batch is not None

    def _validate(self, spec: InputSpec, value: Any) -> tuple[np.ndarray, int | None]:
        array = np.asarray(value)
        if spec.dtype == np.uint8:
            if array.dtype != np.uint8:
                raise ObservationError(
                    f"observation {spec.name!r} must be uint8 (0..255) {spec.layout or ''}, got "
                    f"{array.dtype}; a float image in [0, 1] must be scaled by 255 and cast"
                )
        elif array.dtype.kind not in "fiu":
            raise ObservationError(
                f"observation {spec.name!r} must be numeric (cast to {spec.dtype}), "
                f"got {array.dtype}"
            )
        if array.shape == spec.shape:
            batch = None
            array = array[None]
        elif array.ndim == len(spec.shape) + 1 and array.shape[1:] == spec.shape:
            batch = array.shape[0]
        else:
            hint = ""
            if spec.kind == "image" and len(spec.shape) == 3:
                c, h, w = spec.shape
                if array.shape[-3:] == (h, w, c):
                    hint = " (looks HWC: transpose to CHW with img.transpose(2, 0, 1))"
            dims = ", ".join(map(str, spec.shape))
            raise ObservationError(
                f"observation {spec.name!r} has shape {array.shape}; expected "
                f"{spec.shape} or (batch, {dims}): {spec.describe()}{hint}"
            )
        if array.dtype != spec.dtype:
            with np.errstate(over="ignore"):  # overflow shows up as inf, refused just below
                array = array.astype(spec.dtype)
        if spec.dtype.kind == "f":
            finite = np.isfinite(array)
            if not finite.all():
                bad = np.argwhere(~finite)[:5]
                where = ", ".join(
                    f"{self._where(spec, tuple(i), batch)} = {array[tuple(i)]}" for i in bad
                )
                raise ObservationError(
                    f"observation {spec.name!r} has non-finite values (after casting to "
                    f"{spec.dtype}) at {where}"
                )
        return np.ascontiguousarray(array), batch

    @staticmethod
    def _where(spec: InputSpec, index: tuple[int, ...], batch: int | None) -> str:
        row, rest = index[0], index[1:]
        label = spec.field_of(rest[0]) if spec.fields and len(rest) == 1 else str(list(rest))
        return label if batch is None else f"batch {row} {label}"

    # ------------------------------------------------------------------ timing
    def latency(self, samples: int | None = None) -> dict[str, float]:
        """Latency of ``policy(obs)`` in milliseconds: n, p50_ms, p99_ms, mean_ms, max_ms.

        ``samples=None`` reports the calls made so far (the last 8192): the figures of a running
        control loop. ``samples=N`` times N fresh calls on a zero observation (after a short
        warm-up) without mixing them into the running figures.
        """
        if samples is None:
            n = min(self._n_calls, _LATENCY_WINDOW)
            if n == 0:
                raise RuntimeError("no calls timed yet: call the policy or pass samples=N")
            return _stats_ms(self._timings[:n])
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        saved = self._timings.copy(), self._n_calls
        obs = self.example_observation()
        try:
            for _ in range(min(50, samples)):
                self(obs)
            out = np.empty(samples, dtype=np.int64)
            for i in range(samples):
                start = time.perf_counter_ns()
                self(obs)
                out[i] = time.perf_counter_ns() - start
        finally:
            self._timings, self._n_calls = saved
        return _stats_ms(out)

    def example_observation(self) -> np.ndarray | dict[str, np.ndarray]:
        """A zero observation with the right shapes and dtypes (for smoke tests and timing)."""
        obs = {spec.name: np.zeros(spec.shape, dtype=spec.dtype) for spec in self.inputs}
        if len(self.inputs) == 1 and self.inputs[0].name == "obs":
            return obs["obs"]
        return obs

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}: {s.describe()}" for s in self.inputs)
        acts = ", ".join(
            f"{n} [{u}]" if u else n for n, u in zip(self.action_names, self.action_units)
        )
        return f"Policy({self.env_id or 'unknown env'}; inputs {ins}; action {acts})"
