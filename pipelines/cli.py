"""The `r1kit` command line.

    r1kit run RECIPE [key=value ...] [--fresh] [--stage NAME]
    r1kit config RECIPE [key=value ...]
    r1kit eval MODEL --data PATH [--k K]
    r1kit score --rewards REWARDS.yaml --data completions.jsonl
    r1kit sandbox doctor
    r1kit models prepare NAME

Every error in the user's input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from pipelines.config import ConfigError

USAGE_ERROR = 2


def _cmd_run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from pipelines.runner import run_recipe

    hf_logging.disable_progress_bar()  # per-file load/save bars; r1kit shows its own progress

    run_recipe(args.recipe, args.overrides, fresh=args.fresh, stage=args.stage)
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from pipelines.runner import describe_recipe

    sys.stdout.write(describe_recipe(args.recipe, args.overrides))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from pipelines.models import resolve_model

    for name in args.names:
        sys.stdout.write(f"{name}: {resolve_model(name)}\n")
    return 0


# Subcommands owned by other packages parse their own arguments (and their own --help).
DELEGATED = {
    "eval": ("pipelines.evaluate", "evaluate a model: pass@1, cons@K, format rate, length"),
    "score": ("rewards.score", "score a JSONL file of completions with a reward recipe"),
    "sandbox": ("sandbox.doctor", "sandbox tools: `r1kit sandbox doctor`"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1kit", description="DeepSeek-R1 post-training toolkit")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a stage or pipeline recipe (resumes unless --fresh)")
    run.add_argument("recipe", help="path of a YAML recipe")
    run.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. grpo.lr=3e-6")
    run.add_argument("--fresh", action="store_true", help="ignore checkpoints and start over")
    run.add_argument("--stage", help="in a pipeline recipe, run only this stage")
    run.set_defaults(fn=_cmd_run)

    config = sub.add_parser("config", help="print the resolved configuration of a recipe")
    config.add_argument("recipe")
    config.add_argument("overrides", nargs="*")
    config.set_defaults(fn=_cmd_config)

    models = sub.add_parser("models", help="prepare bundled models (builds or converts them once)")
    models_sub = models.add_subparsers(dest="action", required=True)
    prepare = models_sub.add_parser("prepare", help="e.g. r1kit models prepare bundled:tiny-char")
    prepare.add_argument("names", nargs="+")
    prepare.set_defaults(fn=_cmd_models)

    for name, (_, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _quiet_libraries() -> None:
    """Keep the console for r1kit's own progress bars and metrics, not library chatter."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _quiet_libraries()
    if argv and argv[0] in DELEGATED:
        import importlib

        try:
            return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:]) or 0
        except ConfigError as exc:
            sys.stderr.write(f"r1kit: error: {exc}\n")
            return USAGE_ERROR
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may come after options (`run R.yaml --fresh grpo.lr=1e-6`); argparse leaves those.
    if extra and (not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return args.fn(args)
    except ConfigError as exc:
        sys.stderr.write(f"r1kit: error: {exc}\n")
        return USAGE_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("r1kit: interrupted; rerun the same command to resume\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
