"""CLI sub-commands of the Core ML bridge, registered into ``main.py``'s parser.

    export-coreml --precision fp16|int8|w8a8 -o DIR [--force] [--checkpoint C]
                  [--signoff-dir D] [--tile-px 768] [--overlap-px 48] [--frame 8064x6048]
                  [--overwrite]
    parity        [--checkpoint C] [--scenes a,b] [--precisions fp16,int8,w8a8]
                  [--tile-px 256] [--overlap-px 48] [--size 256x192] [--seed 0] [--json OUT]
    signoff list   [--signoff-dir D] [--checkpoint C] [--precision int8|w8a8]
    signoff create --reviewer NAME --precision int8|w8a8 (--approve-all | --verdict S=V ...)
                   [--note S=TEXT ...] [--notes TEXT] [--parity-json P] [--checkpoint C]
                   [--signoff-dir D]
    ios-plan      [--checkpoint C] [--precision P] [--frame 8064x6048] [--tile-px 768]
                  [--overlap-px 48] [--budget-gb 1.5] [--latency-budget-s 10]
                  [--device-tflops 2] [--bandwidth-gbs 50] [--no-sample] [-o MANIFEST]

Each handler returns an exit code: 0 success, 2 bad input file, 3 output cannot be
written, 4 bad option (sizes included), 5 INT8 export refused by the sign-off gate,
6 plan over budget, 130 cancelled, 1 any other Linear48 error — always with one
``error:`` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from core.errors import (
    CancelledError,
    ConfigError,
    InputFileError,
    Linear48Error,
    OutputError,
    ShapeError,
)
from core.progress import Progress
from core.signoff import Verdict

__all__ = ["EXIT_BUDGET", "EXIT_SIGNOFF", "add_subcommands"]

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_OUTPUT, EXIT_CONFIG = 0, 1, 2, 3, 4
EXIT_SIGNOFF, EXIT_BUDGET, EXIT_CANCELLED = 5, 6, 130

Handler = Callable[[argparse.Namespace], int]


def _exit_code(err: Linear48Error) -> int:
    from ios_bridge.errors import SignoffRequiredError

    for kind, code in (
        (SignoffRequiredError, EXIT_SIGNOFF),
        (InputFileError, EXIT_INPUT),
        (OutputError, EXIT_OUTPUT),
        (ConfigError, EXIT_CONFIG),
        (ShapeError, EXIT_CONFIG),
        (CancelledError, EXIT_CANCELLED),
    ):
        if isinstance(err, kind):
            return code
    return EXIT_ERROR


def _guarded(fn: Handler) -> Handler:
    """Run a handler; a Linear48 error (or a ValueError from a record) is one line."""

    def run(args: argparse.Namespace) -> int:
        try:
            if getattr(args, "checkpoint", "") is None:
                from core.model.infer import DEFAULT_CHECKPOINT

                args.checkpoint = DEFAULT_CHECKPOINT
            return fn(args)
        except Linear48Error as err:
            print(f"error: {err}", file=sys.stderr)
            return _exit_code(err)
        except KeyboardInterrupt:
            print("cancelled; nothing was written", file=sys.stderr)
            return EXIT_CANCELLED

    run.__doc__ = fn.__doc__
    return run


def _progress(quiet: bool) -> Callable[[Progress], None]:
    def show(event: Progress) -> None:
        if not quiet:
            print(f"  [{event.stage}] {event.done}/{event.total} {event.message}", file=sys.stderr)

    return show


def _size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H) positive integers; ConfigError naming the value."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ConfigError(f"size {text!r} is not WxH (e.g. 8064x6048)") from err
    if w <= 0 or h <= 0:
        raise ConfigError(f"size {text!r} must be positive")
    return w, h


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def _loud(warning: str) -> None:
    bar = "!" * 78
    print(f"{bar}\nWARNING: {warning}\n{bar}", file=sys.stderr)


# --------------------------------------------------------------------------- handlers


@_guarded
def cmd_export_coreml(args: argparse.Namespace) -> int:
    """export-coreml: write, verify and report the gain and detail packages."""
    from ios_bridge.export import export_coreml

    w, h = _size(args.frame)
    result = export_coreml(
        args.checkpoint,
        args.output,
        args.precision,
        signoff_dir=args.signoff_dir,
        force=args.force,
        tile_px=args.tile_px,
        overlap_px=args.overlap_px,
        frame_hw=(h, w),
        overwrite=args.overwrite,
        progress=_progress(args.quiet),
    )
    for warning in result.warnings:
        _loud(warning)
    print(result.summary())
    return EXIT_OK


@_guarded
def cmd_parity(args: argparse.Namespace) -> int:
    """parity: FP32 vs FP16 vs INT8 (emulated) per scene and per tile."""
    from core.io.atomic import atomic_write_text
    from ios_bridge.parity import parity_report

    w, h = _size(args.size)
    report = parity_report(
        args.checkpoint,
        _list(args.scenes),
        _list(args.precisions) or [],
        args.tile_px,
        args.overlap_px,
        raw12_size=(w, h),
        seed=args.seed,
        progress=_progress(args.quiet),
    )
    print(report.text())
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(report.to_dict(), indent=1) + "\n")
        print(f"wrote {args.json}")
    return EXIT_OK


@_guarded
def cmd_signoff_list(args: argparse.Namespace) -> int:
    """signoff list: every record in the folder and whether the gate accepts it."""
    from core.model.checkpoint import load_checkpoint
    from core.signoff import find_records, gate_accepts, normalize_model_hash, required_scenes
    from ios_bridge.quant import QuantSpec

    model_hash = load_checkpoint(args.checkpoint).hash
    spec = QuantSpec.default(args.precision)
    records = find_records(args.signoff_dir)
    print(
        f"sign-off records in {args.signoff_dir} (gate: model {model_hash[:12]}, "
        f"{args.precision} config {spec.hash[:8]}):"
    )
    if not records:
        print("  none")
    required = required_scenes()
    for path, rec in records:
        if isinstance(rec, str):
            print(f"  {path.name}: unreadable — {rec}")
            continue
        same = normalize_model_hash(rec.model_hash) == normalize_model_hash(model_hash)
        ok, why = gate_accepts(rec, rec.model_hash if same else model_hash, spec.config, required)
        approved = sum(1 for s in rec.scenes if s.verdict == "approved")
        verdict = "ACCEPTED" if ok else "refused: " + "; ".join(why[:3])
        model = normalize_model_hash(rec.model_hash)[:12]
        print(
            f"  {path.name}: {rec.reviewer}, {rec.date}, model {model}, "
            f"{rec.quantization.get('mode', '?')} {rec.quantization_hash[:8]}, "
            f"{approved}/{len(rec.scenes)} approved — {verdict}"
        )
    return EXIT_OK


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        scene, sep, value = item.partition("=")
        if not sep or not scene.strip():
            raise ConfigError(f"--{what} {item!r} is not SCENE=VALUE")
        out[scene.strip()] = value.strip()
    return out


@_guarded
def cmd_signoff_create(args: argparse.Namespace) -> int:
    """signoff create: write a record for the checkpoint + precision's config (scripting)."""
    from core.model.checkpoint import load_checkpoint
    from core.signoff import (
        SceneVerdict,
        find_accepting_record,
        make_record,
        required_scenes,
        write_record,
    )
    from ios_bridge.parity import signoff_metrics_from_dict
    from ios_bridge.quant import QuantSpec

    ck = load_checkpoint(args.checkpoint)
    spec = QuantSpec.default(args.precision)
    scenes = list(required_scenes())
    verdicts = _pairs(args.verdict, "verdict")
    notes = _pairs(args.note, "note")
    unknown = sorted(set(verdicts) - set(scenes))
    if unknown:
        raise ConfigError(
            f"--verdict: unknown scene(s) {', '.join(unknown)}; QA scenes: {', '.join(scenes)}"
        )
    bad = sorted(s for s, v in verdicts.items() if v not in ("approved", "rejected"))
    if bad:
        raise ConfigError(f"--verdict: {', '.join(bad)} must be approved or rejected")
    if args.approve_all:
        verdicts = {s: verdicts.get(s, "approved") for s in scenes}
    missing = [s for s in scenes if s not in verdicts]
    if missing:
        raise ConfigError(
            f"no verdict for {', '.join(missing)}; give --verdict SCENE=approved|rejected or "
            "--approve-all"
        )
    metrics: dict[str, dict[str, float]] = {}
    if args.parity_json:
        try:
            obj = json.loads(Path(args.parity_json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"--parity-json {args.parity_json}: unreadable ({err})") from err
        metrics = signoff_metrics_from_dict(obj, args.precision)
    try:
        record = make_record(
            args.reviewer,
            f"sha256:{ck.hash}",
            spec.config,
            [
                SceneVerdict(s, cast(Verdict, verdicts[s]), metrics.get(s, {}), notes.get(s, ""))
                for s in scenes
            ],
            notes=args.notes or "",
        )
    except ValueError as err:
        raise ConfigError(f"sign-off record: {err}") from err
    path = write_record(record, args.signoff_dir)
    found, _ = find_accepting_record(args.signoff_dir, ck.hash, spec.config)
    accepted = found is not None and found[0] == path
    print(f"wrote {path} — the export gate {'ACCEPTS' if accepted else 'REFUSES'} it")
    return EXIT_OK


@_guarded
def cmd_ios_plan(args: argparse.Namespace) -> int:
    """ios-plan: manifest + working-set and latency budget report."""
    from ios_bridge.budget import DeviceBudget
    from ios_bridge.manifest import write_manifest
    from ios_bridge.plan import ios_plan

    w, h = _size(args.frame)
    budget = DeviceBudget(
        working_set_bytes=int(args.budget_gb * 1e9),
        latency_s=args.latency_budget_s,
        device_tflops=args.device_tflops,
        device_bandwidth_gbs=args.bandwidth_gbs,
    )
    result = ios_plan(
        args.checkpoint,
        args.precision,
        frame_hw=(h, w),
        tile_px=args.tile_px,
        overlap_px=args.overlap_px,
        budget=budget,
        sample_scene=None if args.no_sample else "backlit",
        progress=_progress(args.quiet),
    )
    print(result.report.text())
    if args.output:
        write_manifest(result.manifest, args.output)
        print(f"wrote {args.output}")
    return EXIT_OK if result.report.ok else EXIT_BUDGET


# ------------------------------------------------------------------------ registration


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register ``export-coreml``, ``parity``, ``signoff`` and ``ios-plan`` on ``sub``
    (``main.py``'s sub-parsers); each sets ``func`` to its handler. Imports nothing
    heavy: torch and coremltools load inside the handlers."""
    default_signoff = Path("signoff")

    def common(p: argparse.ArgumentParser, *, signoff: bool = False) -> None:
        p.add_argument(
            "--checkpoint",
            type=Path,
            default=None,
            help="model checkpoint (default: the shipped resources/models/default.pt)",
        )
        if signoff:
            p.add_argument(
                "--signoff-dir",
                type=Path,
                default=default_signoff,
                help="folder of sign-off records (default: signoff/, as the GUI)",
            )
        p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")

    p = sub.add_parser("export-coreml", help="export the Core ML gain and detail packages")
    p.add_argument("--precision", choices=["fp16", "int8", "w8a8"], default="fp16")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument(
        "--force",
        action="store_true",
        help="export INT8 without an accepting sign-off (stamps a loud warning)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing packages")
    p.add_argument("--tile-px", type=int, default=768, help="detail model tile side")
    p.add_argument("--overlap-px", type=int, default=48, help="tile overlap")
    p.add_argument("--frame", default="8064x6048", help="frame WxH the plan is for")
    common(p, signoff=True)
    p.set_defaults(func=cmd_export_coreml)

    p = sub.add_parser("parity", help="FP32 vs FP16 vs INT8 (emulated) per scene and tile")
    p.add_argument("--scenes", help="comma-separated scene names (default: the QA set)")
    p.add_argument("--precisions", default="fp16,int8,w8a8", help="comma-separated")
    p.add_argument("--tile-px", type=int, default=256)
    p.add_argument("--overlap-px", type=int, default=48)
    p.add_argument("--size", default="256x192", help="simulated RAW12 WxH (frame is twice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the full report as JSON")
    common(p)
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("signoff", help="list or create INT8 sign-off records")
    ssub = p.add_subparsers(dest="signoff_command", required=True)
    q = ssub.add_parser("list", help="records and whether the export gate accepts them")
    q.add_argument("--precision", choices=["int8", "w8a8"], default="w8a8")
    common(q, signoff=True)
    q.set_defaults(func=cmd_signoff_list)
    q = ssub.add_parser("create", help="write a record (scripting; the GUI is interactive)")
    q.add_argument("--reviewer", required=True)
    q.add_argument("--precision", choices=["int8", "w8a8"], required=True)
    q.add_argument("--approve-all", action="store_true", help="approve every QA scene")
    q.add_argument("--verdict", action="append", help="SCENE=approved|rejected (repeatable)")
    q.add_argument("--note", action="append", help="SCENE=TEXT (repeatable)")
    q.add_argument("--notes", help="overall notes")
    q.add_argument("--parity-json", type=Path, help="attach metrics from `parity --json`")
    common(q, signoff=True)
    q.set_defaults(func=cmd_signoff_create)

    p = sub.add_parser("ios-plan", help="iOS manifest + working-set and latency budget")
    p.add_argument("--precision", choices=["fp16", "int8", "w8a8"], default="fp16")
    p.add_argument("--frame", default="8064x6048", help="frame WxH")
    p.add_argument("--tile-px", type=int, default=768)
    p.add_argument("--overlap-px", type=int, default=48)
    p.add_argument("--budget-gb", type=float, default=1.5, help="working-set budget, GB")
    p.add_argument("--latency-budget-s", type=float, default=10.0, help="seconds per frame")
    p.add_argument("--device-tflops", type=float, default=2.0, help="assumed FP16 TFLOP/s")
    p.add_argument("--bandwidth-gbs", type=float, default=50.0, help="assumed GB/s")
    p.add_argument("--no-sample", action="store_true", help="skip tile latency sampling")
    p.add_argument("-o", "--output", type=Path, help="write the manifest JSON here")
    common(p)
    p.set_defaults(func=cmd_ios_plan)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m ios_bridge.cli``) until main.py wires the commands."""
    parser = argparse.ArgumentParser(prog="ios_bridge")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler: Handler = args.func
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
