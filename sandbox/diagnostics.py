"""`r1kit sandbox doctor` and `sandbox.doctor()`: which isolation layers this machine gives the
sandbox, and why not."""

from __future__ import annotations

import argparse
import sys

from sandbox.layers import LEVELS, Layer, achieved_level, level_rank
from sandbox.pool import Sandbox


def probe(**sandbox_options: object) -> list[Layer]:
    """Start one worker (without refusing any level) and return its layer table."""
    options = {"workers": 1, **sandbox_options, "min_isolation": "none"}
    with Sandbox(**options) as box:  # type: ignore[arg-type]
        return box.layers


def doctor(**sandbox_options: object) -> list[tuple[str, bool, str]]:
    """One (layer, on, reason) row per isolation layer, probed for real on this machine."""
    return [(layer.name, layer.on, layer.reason) for layer in probe(**sandbox_options)]


def format_table(layers: list[Layer]) -> str:
    width = max(len(layer.name) for layer in layers)
    lines = [f"{'layer':<{width}}  on?  reason", f"{'-' * width}  ---  ------"]
    lines += [f"{x.name:<{width}}  {'on ' if x.on else 'OFF'}  {x.reason}" for x in layers]
    lines.append(f"isolation level: {achieved_level(layers)}  (levels: {', '.join(LEVELS)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="r1kit sandbox", description=__doc__)
    # `r1kit sandbox doctor` hands us ["doctor", ...]; `python -m sandbox.diagnostics` may omit it.
    parser.add_argument("action", nargs="?", default="doctor", choices=["doctor"])
    parser.add_argument(
        "--min-isolation",
        default="full",
        choices=list(LEVELS),
        help="exit with status 1 when the machine offers less (default: full)",
    )
    args = parser.parse_args(argv)
    layers = probe()
    print(format_table(layers))
    if level_rank(achieved_level(layers)) < level_rank(args.min_isolation):
        print(f"below min_isolation={args.min_isolation}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
