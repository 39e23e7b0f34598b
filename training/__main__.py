"""Command line: ``python -m training <command>``.

    train     --config C [--root DIR] [--resume] [--dry-run] [--threads N] [--ship]
    runs      [--root DIR] [--markdown FILE]     dashboard table (also written as Markdown)
    evaluate  --checkpoint C [--out DIR] [--size WxH] [--seed N]
    ship      --run NAME [--root DIR]            copy a run's model + report to resources/
    diagnostics train|evaluate|calibrate ...     the diagnostic net (training/diagnostics.py)
    demosaic  train|evaluate ...                 the learned demosaicer (training/demosaic.py)

The shipped default is trained from scratch with::

    python -m training train --config training/configs/default.toml --ship
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from core.errors import Linear48Error
from training.tracking import DEFAULT_ROOT

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "models"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model from a TOML config")
    t.add_argument("--config", required=True, type=Path)
    t.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="runs folder")
    t.add_argument("--resume", action="store_true", help="continue from the run's state")
    t.add_argument("--dry-run", action="store_true", help="two steps, tiny data")
    t.add_argument("--threads", type=int, default=None, help="override optim.threads")
    t.add_argument("--ship", action="store_true", help="copy the result to resources/models")
    r = sub.add_parser("runs", help="print the run dashboard")
    r.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    r.add_argument("--markdown", type=Path, default=None, help="default: ROOT/runs.md")
    e = sub.add_parser("evaluate", help="evaluate a checkpoint on the held-out set")
    e.add_argument("--checkpoint", required=True, type=Path)
    e.add_argument("--out", type=Path, default=None, help="default: beside the checkpoint")
    e.add_argument("--size", default="512x384", help="RAW12 size WxH")
    e.add_argument("--seed", type=int, default=9_000_000)
    s = sub.add_parser("ship", help="copy a run's model and report into resources/models")
    s.add_argument("--run", required=True)
    s.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    return p


def ship(run_dir: Path, dest: Path = RESOURCES) -> Path:
    """Copy ``run_dir``'s model.pt and eval report into ``dest`` (default.pt, default_eval/)."""
    from core.model.checkpoint import load_checkpoint

    ck = load_checkpoint(run_dir / "model.pt")  # verify before shipping
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "model.pt", dest / "default.pt")
    report = run_dir / "eval"
    if report.is_dir():
        target = dest / "default_eval"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(report, target)
    print(f"shipped {run_dir.name} ({ck.hash[:16]}) to {dest / 'default.pt'}")
    return dest / "default.pt"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["diagnostics"]:
        from training.diagnostics import main as diagnostics_main

        return diagnostics_main(argv[1:])
    if argv[:1] == ["demosaic"]:
        from training.demosaic import main as demosaic_main

        return demosaic_main(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "train":
            from training.config import load_config
            from training.train import train

            cfg = load_config(args.config)
            if args.threads is not None:
                cfg = cfg.with_overrides(optim={"threads": args.threads})
            rec = train(cfg, root=args.root, resume=args.resume, dry_run=args.dry_run)
            print(f"{rec.name}: {rec.status}, checkpoint {rec.checkpoint}")
            for k, v in rec.metrics.items():
                print(f"  {k}: {v}")
            if args.ship and not args.dry_run:
                ship(args.root / rec.name)
        elif args.command == "runs":
            from training.tracking import Registry, dashboard_markdown

            table = dashboard_markdown(Registry(args.root).all())
            out = args.markdown or (args.root / "runs.md")
            out.write_text("# Linear48 training runs\n\n" + table)
            print(table, end="")
            print(f"(written to {out})")
        elif args.command == "evaluate":
            from training.evaluate import evaluate_checkpoint

            out_dir = args.out or (args.checkpoint.parent / "eval")
            rep = evaluate_checkpoint(args.checkpoint, out_dir, size12=args.size, seed=args.seed)
            for desc, ok, detail in rep.criteria:
                print(f"[{'met' if ok else 'NOT met'}] {desc}: {detail}")
            print(f"report: {rep.markdown}")
        elif args.command == "ship":
            ship(args.root / args.run)
    except (Linear48Error, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
