"""Linear48 entry point: ``python main.py`` opens the GUI, ``python main.py <command>`` the CLI.

Thin by design: it parses arguments, calls ``core`` and prints. Heavy or optional packages
are imported inside the sub-command that needs them, so ``convert`` never loads Qt.
Exit codes: 0 success, 2 bad input file, 3 output cannot be written, 4 bad option,
130 cancelled, 1 unexpected error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_UNEXPECTED, EXIT_INPUT, EXIT_OUTPUT, EXIT_CONFIG, EXIT_CANCELLED = 0, 1, 2, 3, 4, 130
DEFAULT_DEMO_DIR = Path("out/demo")


class _TqdmProgress:
    """A tqdm bar per pipeline stage, on stderr (quiet when not a terminal unless asked)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.stage = ""

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if event.stage != self.stage:
            self.close()
            self.stage = event.stage
            self.bar = tqdm(
                total=event.total,
                desc=f"{event.stage:>8}",
                unit="step",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )
        if self.bar is not None:
            self.bar.total = event.total
            self.bar.n = event.done
            if event.message:
                self.bar.set_postfix_str(event.message[:40], refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_gui(args: argparse.Namespace) -> int:
    from app.main import run_gui

    return run_gui(
        pair_dir=args.pair_dir,
        raw12=args.raw12,
        proraw48=args.proraw48,
        demo=args.demo,
        screenshot=args.screenshot,
        tab=args.tab,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from core.simulate.pair import write_demo_pair

    paths = write_demo_pair(Path(args.output), scene=args.scene, size=args.size, seed=args.seed)
    print(f"RAW12:    {paths.raw12}\nProRAW48: {paths.proraw48}\ntruth:    {paths.truth}")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from core.pipeline import ConvertOptions, convert

    raw12, proraw48 = args.raw12, args.proraw48
    output = Path(args.output) if args.output else None
    if (raw12 is None) != (proraw48 is None):
        print(
            "error: give both --raw12 and --proraw48, or neither for the demo pair", file=sys.stderr
        )
        return EXIT_CONFIG
    own_demo_output = raw12 is None and output is None
    if raw12 is None:
        from core.simulate.pair import write_demo_pair

        demo = write_demo_pair(DEFAULT_DEMO_DIR)
        raw12, proraw48 = demo.raw12, demo.proraw48
        output = output or DEFAULT_DEMO_DIR / "linear48.dng"
        print(f"no files given: converting the demo pair in {DEFAULT_DEMO_DIR}/")
    if output is None:
        print("error: -o/--output is required", file=sys.stderr)
        return EXIT_CONFIG
    options = ConvertOptions(
        allow_misaligned=args.allow_misaligned,
        method=args.method,
        sample_format="float32" if args.float32 else "uint16",
        layout="strips" if args.strips else "ljpeg-tiles",
        # The demo's own default output is replaced on every run (the README's first command
        # must work twice); any other existing file needs --force.
        overwrite=args.force or not Path(output).exists() or own_demo_output,
        report_path=Path(args.report) if args.report else None,
        demosaic=args.demosaic,
    )
    bar = _TqdmProgress(enabled=not args.quiet and sys.stderr.isatty())
    try:
        result = convert(raw12, proraw48, output, options, progress=bar)
    finally:
        bar.close()
    m = result.anchor
    print(
        f"wrote {result.output_path} ({result.write_info.bytes_written / 1e6:.1f} MB, "
        f"{result.write_info.sample_format}, headroom {result.write_info.headroom_ev:.2f} EV)"
    )
    print(f"method: {result.decision.used} ({result.decision.reason})")
    print(f"anchor PSNR {m.psnr_db:.2f} dB, SSIM {m.ssim:.4f}")
    print(f"report: {result.report_path}")
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    from core.geometry.registration import register
    from core.io.pair import load_pair

    pair = load_pair(args.raw12, args.proraw48)
    result = register(pair.camera48, pair.anchor, pair.raw12.cfa, unclipped=pair.unclipped)
    info = result.to_json()
    if args.json:
        _print_json(info)
        return EXIT_OK
    p = result.params
    print(f"translation  {p.translation_px[0]:+.3f}, {p.translation_px[1]:+.3f} px (48MP)")
    print(f"zoom         {p.zoom:.6f}")
    print("radial       k1 {:+.5f}  k2 {:+.5f}  k3 {:+.5f}".format(*p.radial))
    print("tangential   p1 {:+.6f}  p2 {:+.6f}".format(*p.tangential))
    cx, cy = info["principal_point_px"]
    print(f"principal    {cx:.1f}, {cy:.1f} px")
    print(f"residual     {result.residual_rms_px:.3f} px RMS (48MP)")
    verdict = "PASSED" if result.gate.passed else "FAILED"
    print(f"gate         {verdict}")
    for name, value in result.gate.figures.items():
        print(f"  {name:>22}: {value}")
    for name, value in result.gate.thresholds.items():
        print(f"  {'threshold ' + name:>22}: {value}")
    for reason in result.gate.reasons:
        print(f"  reason: {reason}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from core.io.inspect import describe_dng

    info = describe_dng(args.file)
    if args.json:
        _print_json(info)
        return EXIT_OK
    for key, value in info.items():
        if key == "provenance":
            continue
        print(f"{key:>28}: {value}")
    prov = info.get("provenance")
    print(f"{'provenance':>28}: {'none (not written by Linear48)' if not prov else ''}")
    for key, value in (prov or {}).items():
        print(f"{key:>28}  {value}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from core.evaluate import evaluate_output

    ev = evaluate_output(args.raw12, args.output)
    if args.json:
        _print_json({"headroom_ev": ev.headroom_ev, **ev.metrics.to_dict()})
        return EXIT_OK
    m = ev.metrics
    print(f"anchor PSNR {m.psnr_db:.2f} dB  SSIM {m.ssim:.4f}  (headroom {ev.headroom_ev:.2f} EV)")
    for plane, stats in m.per_cfa.items():
        print(
            f"  {plane:>2}: mean {stats.mean:+.5f}  std {stats.std:.5f}  "
            f"p01 {stats.p01:+.5f}  p99 {stats.p99:+.5f}"
        )
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:
    from core.diagnostics import diagnose_file, format_diagnostics

    result = diagnose_file(args.file, method=args.method, raw12=args.raw12)
    if args.json:
        _print_json(result)
    else:
        print(format_diagnostics(result), end="")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (one sub-command per job)."""
    parser = argparse.ArgumentParser(
        prog="linear48",
        description="iPhone RAW12 + ProRAW48 -> 48MP scene-linear DNG "
        "with local tone mapping removed.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("convert", help="convert a capture pair to a linear DNG")
    p.add_argument("--raw12", type=Path, help="12MP Bayer RAW DNG")
    p.add_argument("--proraw48", type=Path, help="48MP ProRAW DNG")
    p.add_argument("-o", "--output", type=Path, help="output DNG (a JSON report goes beside)")
    p.add_argument(
        "--method",
        default="auto",
        choices=["auto", "model", "gain-field", "global"],
        help="de-LTM method (auto = model -> gain-field -> global, decided by safety checks)",
    )
    p.add_argument(
        "--float32",
        action="store_true",
        help="HDR float32 output (fewer readers open it: no dcraw, no RawTherapee "
        "5.9, no LibRaw < 0.21)",
    )
    p.add_argument(
        "--strips",
        action="store_true",
        help="uncompressed strips instead of lossless-JPEG tiles (uint16 only)",
    )
    p.add_argument(
        "--demosaic",
        default="bilinear",
        choices=["bilinear", "malvar", "dht", "aahd", "learned"],
        help="demosaic of the RAW12 guidance the model reads (default bilinear: what the "
        "shipped model was trained with; dht/aahd are LibRaw's)",
    )
    p.add_argument("--report", type=Path, help="JSON report path (default: OUT.json)")
    p.add_argument(
        "--allow-misaligned",
        action="store_true",
        help="convert even when the alignment gate fails (global baseline only; recorded)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("register", help="register ProRAW48 onto RAW12 and print the warp")
    p.add_argument("--raw12", type=Path, required=True)
    p.add_argument("--proraw48", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("inspect", help="describe a DNG: kind, key tags, provenance")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("eval", help="anchor metrics of an output DNG against its RAW12")
    p.add_argument("--raw12", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "diagnose", help="exposure, white-balance and saturation diagnostics of an output DNG"
    )
    p.add_argument("file", type=Path, help="a linear DNG written by convert")
    p.add_argument("--raw12", type=Path, help="its RAW12: adds the per-region cast map")
    p.add_argument(
        "--method", default="auto", choices=["auto", "learned", "classical"], help="estimator"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diagnose)

    from ios_bridge.cli import add_subcommands as add_ios_subcommands

    add_ios_subcommands(sub)

    p = sub.add_parser("gui", help="open the desktop application (the default command)")
    p.add_argument("pair_dir", nargs="?", type=Path, help="folder of capture pairs to list")
    p.add_argument("--raw12", type=Path, help="12MP Bayer RAW DNG")
    p.add_argument("--proraw48", type=Path, help="48MP ProRAW DNG")
    p.add_argument("--demo", action="store_true", help="open the simulated demo pair")
    p.add_argument(
        "--screenshot", type=Path, help="render the populated window to this PNG and exit"
    )
    p.add_argument(
        "--tab",
        choices=("inspect", "inspect-diagnostics", "qa", "signoff", "experiments"),
        default="inspect",
        help=(
            "tab shown (and in --screenshot; qa runs the simulated QA set first, signoff "
            "compares every QA scene, inspect-diagnostics opens the diagnostics panel)"
        ),
    )
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("demo", help="write a simulated capture pair (RAW12 + ProRAW48 + truth)")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_DEMO_DIR, help="folder")
    p.add_argument("--scene", default="backlit", help="scene name (see core.simulate.scenes)")
    p.add_argument(
        "--size",
        default="1008x756",
        help="RAW12 size WxH (ProRAW48 is twice); 4032x3024 for full size",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:  # no sub-command: the desktop application
        verbose = args.verbose
        args = parser.parse_args(["gui"])
        args.verbose = verbose
    from core.errors import (
        CancelledError,
        ConfigError,
        InputFileError,
        Linear48Error,
        OutputError,
    )

    handlers: list[tuple[type[BaseException], int]] = [
        (InputFileError, EXIT_INPUT),
        (OutputError, EXIT_OUTPUT),
        (ConfigError, EXIT_CONFIG),
        (CancelledError, EXIT_CANCELLED),
        (Linear48Error, EXIT_UNEXPECTED),
    ]
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("cancelled; nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as err:  # the CLI top level is one of two places that catch broadly
        for kind, code in handlers:
            if isinstance(err, kind):
                print(f"error: {err}", file=sys.stderr)
                return code
        logging.getLogger("linear48").exception("unexpected error")
        print(f"error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
