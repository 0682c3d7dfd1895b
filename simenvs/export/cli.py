"""``simenvs export RUN_DIR --format onnx|torchscript|both --out DIR``.

Also runs as ``python -m simenvs.export``.

The integrator's `simenvs.cli` wires it as a subcommand::

    sub = subparsers.add_parser("export", help="export a trained policy for hardware")
    simenvs.export.cli.add_arguments(sub)
    sub.set_defaults(func=simenvs.export.cli.run)      # run(args) -> int exit code
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory: model.zip, config.json, [vecnormalize.pkl]")
    parser.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "both"])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--control-hz", type=float, default=None, help="override control rate")
    parser.add_argument(
        "--verify",
        type=int,
        default=256,
        metavar="N",
        help="observations checked against SB3 predict() after export (0 disables)",
    )
    parser.add_argument(
        "--legacy-onnx",
        action="store_true",
        help="use torch's legacy TorchScript-based ONNX exporter instead of dynamo",
    )


def run(args: argparse.Namespace) -> int:
    from simenvs.export.api import export_policy

    result = export_policy(
        args.run_dir,
        args.out,
        format=args.format,
        control_hz=args.control_hz,
        verify_samples=args.verify,
        dynamo=not args.legacy_onnx,
    )
    action = result.metadata["action"]
    summary = {
        "out_dir": str(result.out_dir),
        "files": {k: str(v) for k, v in result.files.items()},
        "inputs": {i["name"]: i["shape"] for i in result.metadata["inputs"]},
        "action": [f"{n} [{u}]" if u else n for n, u in zip(action["names"], action["units"])],
        "control_hz": result.metadata["control_hz"],
        "max_abs_error": result.max_abs_error,
    }
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simenvs export", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
