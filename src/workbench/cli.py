"""`workbench` console script: `workbench run ...` (the pipeline) and `workbench demo-data ...`."""

from __future__ import annotations

import argparse
import sys


def demo_data(argv: list[str]) -> int:
    from workbench import paths
    from workbench.datasets.demo import generate_demo_retailer

    parser = argparse.ArgumentParser(prog="workbench demo-data", description="Generate the demo retailer's operational database.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies customers and transactions")
    parser.add_argument("--products", type=int, default=None,
                        help="catalog size, e.g. 100000 for a large retailer (default: the 600-product demo catalog)")
    parser.add_argument("--path", default=None, help="SQLite file (default data/operational/demo_retailer.sqlite)")
    parser.add_argument("--force", action="store_true", help="regenerate even if the file exists")
    args = parser.parse_args(argv)
    from pathlib import Path

    path = Path(args.path) if args.path else paths.demo_database()
    if path.exists() and not args.force:
        print(f"demo database already at {path} (use --force to regenerate)")
        return 0
    if path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = generate_demo_retailer(path, seed=args.seed, scale=args.scale, products=args.products)
    print(f"demo database written to {path}: {summary}")
    return 0


COMMANDS = ("run", "demo-data")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: workbench {run,demo-data} [options]\n"
              "  run        run the pipeline notebooks (extract, cleanse, train, evaluate) with papermill\n"
              "  demo-data  generate the embedded demo retailer's operational database", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        from workbench.runner import main as run_main

        return run_main(rest)
    return demo_data(rest)


if __name__ == "__main__":
    sys.exit(main())
