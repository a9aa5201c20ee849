"""The pipeline orchestrator: several stage recipes run in order as one resumable run.

A pipeline recipe names its stages; each stage is a stage recipe (a file, relative to the
pipeline file, or written inline) plus dotted overrides:

    pipeline: quickstart
    output_dir: runs/quickstart
    eval: {data: {path: builtin:addition, seed: 1}, k: 4, limit: 64}
    stages:
      - name: cold_start
        recipe: cold_start.yaml
      - name: reasoning_rl
        recipe: reasoning_rl.yaml
        overrides: {model: "stage:cold_start", grpo.max_steps: 50}

Each stage writes into OUTPUT/NAME. A string `stage:NAME` anywhere in a stage's config is
replaced, just before the stage runs, by the model directory that stage NAME produced
(`stage:NAME.KEY` by its output KEY). OUTPUT/manifest.json records each stage's status,
config hash, inputs and outputs; it is rewritten atomically after every change, so a run
killed at any point resumes where it stopped when the same command is run again.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_yaml,
    set_dotted,
    to_dict,
)
from pipelines.distributed import barrier, broadcast_object, is_main_process
from pipelines.eval_settings import EvalSettings
from pipelines.files import write_json_atomic
from pipelines.recipe import STAGES, resolve, run_stage, stage_kind
from pipelines.report import build_report
from pipelines.run_record import config_hash

REF_PREFIX = "stage:"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
ENTRY_KEYS = ("name", "recipe", "overrides")
PIPELINE_KEYS = ("pipeline", "output_dir", "seed", "eval", "stages")
RESERVED_NAMES = {"base", "eval", "plots", *PIPELINE_KEYS}  # directories and keys of the run

Log = Callable[[str], None]


@dataclass(frozen=True)
class StagePlan:
    name: str
    kind: str
    data: dict[str, Any]  # the stage's config as plain data; `stage:` references not yet bound
    config_hash: str
    refs: tuple[str, ...]  # earlier stages whose outputs this stage reads

    def config_with_outputs(self, outputs: dict[str, dict[str, Any]]) -> Any:
        """The stage's config with every `stage:NAME[.KEY]` replaced by that stage's output."""
        bound = _map_strings(self.data, lambda s: _bind(s, outputs, self.name))
        return resolve(bound, where=f"stages.{self.name}")[1]


@dataclass(frozen=True)
class PipelinePlan:
    name: str
    output_dir: Path
    stages: list[StagePlan]
    eval: EvalSettings | None
    eval_hash: str | None

    def stage(self, name: str) -> StagePlan:
        for st in self.stages:
            if st.name == name:
                return st
        raise ConfigError(f"--stage {name}: no such stage; this pipeline has {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [st.name for st in self.stages]

    def base_model(self) -> str | None:
        if self.eval is None or not self.eval.base:
            return None
        if self.eval.base_model:
            return self.eval.base_model
        model = self.stages[0].data.get("model") if self.stages else None
        return model if isinstance(model, str) and not model.startswith(REF_PREFIX) else None


# ---------------------------------------------------------------------------- loading
def is_pipeline(data: dict[str, Any]) -> bool:
    return "pipeline" in data or "stages" in data


def load_pipeline(path: str | Path, overrides: list[str] = ()) -> PipelinePlan:
    """Read a pipeline recipe, apply `STAGE.key=value` overrides and validate every stage."""
    path = Path(path)
    raw = load_yaml(path)
    unknown = sorted(set(raw) - set(PIPELINE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} in a pipeline recipe; allowed: {', '.join(PIPELINE_KEYS)}")
    name = str(raw.get("pipeline") or path.stem)
    entries = raw.get("stages")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: `stages:` must be a non-empty list of {{name, recipe, overrides}}")
    stage_dicts = {}
    for i, entry in enumerate(entries):
        stage_name, stage_dict = _load_entry(entry, i, path.parent)
        if stage_name in stage_dicts:
            raise ConfigError(f"stages[{i}]: the name {stage_name!r} is used twice; stage names must be unique")
        stage_dicts[stage_name] = stage_dict
    top = {"output_dir": raw.get("output_dir", f"runs/{name}"), "seed": raw.get("seed"), "eval": raw.get("eval"),
           **stage_dicts}
    top = apply_overrides(top, _check_override_targets(list(overrides), list(stage_dicts)))
    if top["seed"] is not None:
        for stage_name in stage_dicts:
            top[stage_name] = _seeded(top[stage_name], top["seed"], f"stages.{stage_name}")
    output_dir = Path(str(top["output_dir"]))
    eval_settings = None if top["eval"] is None else from_dict(EvalSettings, top["eval"], where="eval")
    judge = eval_settings.reward_model if eval_settings is not None else None
    if judge is not None and judge.startswith(REF_PREFIX) and judge.removeprefix(REF_PREFIX) not in stage_dicts:
        raise ConfigError(f"eval.reward_model: `{judge}` names no stage; this pipeline has {', '.join(stage_dicts)}")
    stages: list[StagePlan] = []
    for stage_name in stage_dicts:
        data = _with_pipeline_eval(top[stage_name], top["eval"])
        stages.append(_plan_stage(stage_name, data, output_dir, [s.name for s in stages]))
    eval_hash = None if eval_settings is None else config_hash(to_dict(eval_settings))
    return PipelinePlan(name, output_dir, stages, eval_settings, eval_hash)


def _load_entry(entry: Any, index: int, base_dir: Path) -> tuple[str, dict[str, Any]]:
    where = f"stages[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with name and recipe (or an inline config), got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED_NAMES:
        raise ConfigError(f"{where}: name {name!r} must be letters, digits, _ or - (not starting with a digit) "
                          f"and not one of {', '.join(sorted(RESERVED_NAMES))}")
    data: dict[str, Any] = {}
    if entry.get("recipe") is not None:
        recipe = Path(str(entry["recipe"]))
        data = load_yaml(recipe if recipe.is_absolute() else base_dir / recipe)
    inline = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    data = _deep_merge(data, inline)
    if "stage" not in data:
        raise ConfigError(f"{where} ({name}): give `recipe: FILE.yaml` or an inline config with `stage: KIND`")
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where} ({name}).overrides: expected a mapping of dotted keys to values")
    for key, value in overrides.items():
        _set_dotted(data, str(key), value, f"{where} ({name}).overrides")
    return name, data


def _check_override_targets(overrides: list[str], stage_names: list[str]) -> list[str]:
    for item in overrides:
        head = item.partition("=")[0].split(".")[0]
        if head not in ("output_dir", "seed", "eval", *stage_names):
            raise ConfigError(f"override {item!r}: in a pipeline, address a stage as STAGE.key=value; "
                              f"stages: {', '.join(stage_names)} (or eval.KEY, output_dir, seed)")
    return overrides


def _seeded(data: dict[str, Any], seed: Any, where: str) -> dict[str, Any]:
    """The stage's config with every seed of its own randomness (sampling, initialisation, data
    order; not which rows its data generator draws) set to the pipeline's `seed`."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed: {seed!r} must be an integer (the training seed of every stage)")
    kind = stage_kind(str(data.get("stage")))
    data = copy.deepcopy(data)
    for key in kind.seed_fields if kind is not None else ():
        _set_dotted(data, key, seed, where)
    return data


def _with_pipeline_eval(data: dict[str, Any], pipeline_eval: Any) -> dict[str, Any]:
    """A stage that evaluates during training (`grpo.eval_every`) and has no `eval:` of its own
    uses the pipeline's eval settings (without the pipeline-only `base` keys)."""
    section = data.get("grpo")
    if not isinstance(section, dict) or section.get("eval_every") is None or "eval" in data:
        return data
    if not isinstance(pipeline_eval, dict):
        return data
    settings = {k: v for k, v in pipeline_eval.items() if k not in ("base", "base_model")}
    return {**data, "eval": settings}


def _plan_stage(name: str, data: dict[str, Any], output_dir: Path, earlier: list[str]) -> StagePlan:
    data = {**data, "output_dir": str(output_dir / name)}  # the pipeline owns where stages write
    refs = sorted({_ref_target(s) for s in _strings(data) if s.startswith(REF_PREFIX)})
    for ref in refs:
        if ref not in earlier:
            raise ConfigError(f"stages.{name}: `stage:{ref}` must name a stage listed before {name} "
                              f"(earlier stages: {', '.join(earlier) or 'none'})")
    kind, config = resolve(data, where=f"stages.{name}")  # validates now, before anything runs
    plain = {"stage": kind, **to_dict(config)}
    return StagePlan(name, kind, plain, config_hash(plain), tuple(refs))


def _ref_target(value: str) -> str:
    return value.removeprefix(REF_PREFIX).split(".")[0]


def _bind(value: str, outputs: dict[str, dict[str, Any]], stage: str) -> str:
    if not value.startswith(REF_PREFIX):
        return value
    target, _, key = value.removeprefix(REF_PREFIX).partition(".")
    key = key or "model"
    produced = outputs.get(target) or {}
    if key not in produced:
        raise ConfigError(f"stages.{stage}: `{value}` needs output {key!r} of stage {target}, which produced "
                          f"{', '.join(sorted(produced)) or 'nothing'}")
    return str(produced[key])


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for v in data.values():
            yield from _strings(v)
    elif isinstance(data, list):
        for v in data:
            yield from _strings(v)


def _map_strings(data: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return fn(data)
    if isinstance(data, dict):
        return {k: _map_strings(v, fn) for k, v in data.items()}
    if isinstance(data, list):
        return [_map_strings(v, fn) for v in data]
    return data


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    try:
        set_dotted(data, key, value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def describe_pipeline(path: str | Path, overrides: list[str]) -> str:
    """Every stage's resolved config (references to earlier stages shown as `stage:NAME`)."""
    plan = load_pipeline(path, overrides)
    parts = [f"pipeline: {plan.name}\noutput_dir: {plan.output_dir}\n"]
    for i, st in enumerate(plan.stages, 1):
        parts.append(f"\n# --- stage {i}/{len(plan.stages)}: {st.name} (config hash {st.config_hash})\n")
        parts.append(dump_yaml(st.data))
    if plan.eval is not None:
        parts.append("\n# --- eval (after each stage)\n" + dump_yaml({"eval": plan.eval}))
    return "".join(parts)


# --------------------------------------------------------------------------- manifest
class Manifest:
    """OUTPUT/manifest.json: per stage status (pending, running, done), config hash, inputs,
    outputs and times. Every save writes a temporary file and renames it over the old one."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    @classmethod
    def load(cls, plan: PipelinePlan, *, fresh: bool = False) -> Manifest:
        path = plan.output_dir / "manifest.json"
        data: dict[str, Any] = {}
        if path.is_file() and not fresh:
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path} is not valid JSON ({exc}); delete it or rerun with --fresh") from exc
        old = data.get("stages", {})
        data = {"pipeline": plan.name, "output_dir": str(plan.output_dir), "order": plan.names,
                "stages": {n: old.get(n) or {"status": "pending"} for n in plan.names},
                "eval_hash": plan.eval_hash}
        return cls(path, data)

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"][name]

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {n: rec.get("outputs") or {} for n, rec in self.data["stages"].items() if rec["status"] == "done"}

    def save(self) -> None:
        """Write the manifest (the main process only: under several processes every process
        keeps the same manifest in memory, and one file has one writer)."""
        self.data["updated"] = _now()
        if is_main_process():
            write_json_atomic(self.path, self.data)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def decide(record: dict[str, Any], config_hash: str, inputs: dict[str, str | None], *,
           fresh: bool) -> tuple[str, str]:
    """(action, reason) for one stage: action is skip, start, resume or restart (from scratch).

    A stage is up to date when it is done with the same config hash and the same runs of the
    stages before it; any earlier stage that ran again makes it stale.
    """
    status = record.get("status", "pending")
    if fresh:
        return "restart", "starting over (--fresh)"
    if status == "pending":
        return "start", "starting"
    if record.get("config_hash") != config_hash:
        return "restart", "config changed since its last run; rerunning it and the stages after it"
    changed = [n for n, run in inputs.items() if (record.get("inputs") or {}).get(n) != run]
    if changed:
        return "restart", f"earlier stage {', '.join(changed)} ran again since; rerunning it"
    if status == "done":
        return "skip", "done (config unchanged); skipping"
    return "resume", "unfinished; resuming from its last checkpoint"


# -------------------------------------------------------------------------------- run
def run_pipeline(path: str | Path, overrides: list[str] = (), *, fresh: bool = False,
                 stage: str | None = None, log: Log | None = None) -> dict[str, Any]:
    """Run (or resume) every stage in order, or only `stage`; returns the manifest data."""
    plan = load_pipeline(path, list(overrides))
    log = (log or console_log()) if is_main_process() else _quiet
    only = plan.stage(stage) if stage is not None else None
    manifest = Manifest.load(plan, fresh=fresh and only is None)
    barrier()  # every process has read the manifest before the main process rewrites it
    if fresh and only is None and is_main_process():
        shutil.rmtree(plan.output_dir / "eval", ignore_errors=True)
    manifest.save()
    if only is not None:
        missing = [r for r in only.refs if manifest.stage(r)["status"] != "done"]
        if missing:
            raise ConfigError(f"--stage {only.name} reads the outputs of {', '.join(missing)}, which "
                              f"{'is' if len(missing) == 1 else 'are'} not done; run the pipeline without --stage first")
    _check_data(plan, manifest, [only] if only is not None else plan.stages, fresh=fresh)
    for i, st in enumerate(plan.stages, 1):
        if only is None:
            _ensure_base_eval(plan, manifest, log)
        if only is not None and st.name != only.name:
            continue
        head = f"[{plan.name}] stage {i}/{len(plan.stages)} {st.name} ({st.kind})"
        _run_stage(plan, manifest, st, head, fresh=fresh, log=log, only=only is not None)
        outputs = manifest.stage(st.name).get("outputs") or {}
        if "model" in outputs and STAGES[st.kind].generative:  # a reward model is not evaluated
            run_id = manifest.stage(st.name)["run_id"]
            _ensure_eval(plan, manifest, st.name, str(outputs["model"]), run_id, log)
        if is_main_process():
            build_report(plan.output_dir)
    if only is None:
        _ensure_base_eval(plan, manifest, log)
        log(f"[{plan.name}] all {len(plan.stages)} stages done; report: {plan.output_dir / 'report.md'}")
    return manifest.data


def _check_data(plan: PipelinePlan, manifest: Manifest, stages: list[StagePlan], *,
                fresh: bool) -> None:
    """Read the data of every stage that is going to run, and the eval rows, before the first
    model loads: a bad file fails now, not after the stages before it have trained. A stage
    whose data comes from an earlier stage (`stage:NAME.KEY`) is checked when it starts."""
    from pipelines.data import load_rows

    if plan.eval is not None:
        plan.eval.rows()
    for st in stages:
        record = manifest.stage(st.name)
        unchanged = record.get("config_hash") == st.config_hash
        if not fresh and record.get("status") == "done" and unchanged:
            continue
        check = STAGES[st.kind].check_data
        data = {k: v for k, v in st.data.items() if k not in ("model", "base_model")}
        if check is None or any(s.startswith(REF_PREFIX) for s in _strings(data)):
            continue
        try:
            check(resolve(st.data, where=f"stages.{st.name}")[1])
        except ConfigError as exc:
            raise ConfigError(f"stages.{st.name}: {exc}") from exc


def _run_stage(plan: PipelinePlan, manifest: Manifest, st: StagePlan, head: str, *, fresh: bool, log: Log,
               only: bool = False) -> None:
    names = plan.names
    inputs = {n: manifest.stage(n).get("run_id") for n in names[: names.index(st.name)]}
    record = manifest.stage(st.name)
    action, reason = decide(record, st.config_hash, inputs, fresh=fresh)
    log(f"{head}: {reason}" + (" (add --fresh to run it again)" if only and action == "skip" else ""))
    if action == "skip":
        return
    config = st.config_with_outputs(manifest.outputs())
    stage_dir = plan.output_dir / st.name
    if action == "restart" and stage_dir.exists() and is_main_process():
        shutil.rmtree(stage_dir)  # the pipeline owns OUTPUT/NAME: stale checkpoints must not resume
    barrier()
    if action in ("start", "restart"):
        record.clear()
        record.update(attempts=0, seconds=0.0, started=_now())
    record.update(kind=st.kind, status="running", config_hash=st.config_hash, inputs=inputs,
                  output_dir=str(stage_dir), attempts=record.get("attempts", 0) + 1)
    record.pop("run_id", None)
    manifest.save()
    start = time.perf_counter()
    try:
        outputs = run_stage(st.kind, config, fresh=action == "restart", check=False)
    except BaseException as exc:
        record["seconds"] = record.get("seconds", 0.0) + time.perf_counter() - start
        record["last_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        manifest.save()
        raise
    record["seconds"] = record.get("seconds", 0.0) + time.perf_counter() - start
    record.pop("last_error", None)
    record.update(status="done", outputs=json.loads(json.dumps(outputs or {}, default=str)),
                  finished=_now(), run_id=broadcast_object(uuid.uuid4().hex[:12]))
    manifest.save()
    log(f"{head}: done in {record['seconds']:.1f}s")


def _eval_reward_model(plan: PipelinePlan, manifest: Manifest, name: str) -> tuple[str | None, str | None]:
    """(path, run id) of the reward model that judges stage `name`'s evaluation. A `stage:JUDGE`
    reference judges the stages after JUDGE, and `base` (evaluated once JUDGE is done), with
    JUDGE's model; the stages up to JUDGE get None, whatever has run since, so a resumed run
    evaluates as an uninterrupted one. Anything else is used as given."""
    ref = plan.eval.reward_model if plan.eval is not None else None
    if ref is None or not ref.startswith(REF_PREFIX):
        return ref, None
    judge = ref.removeprefix(REF_PREFIX)
    record = manifest.stage(judge)
    if name != "base" and plan.names.index(name) <= plan.names.index(judge) or record.get("status") != "done":
        return None, None
    return _bind(ref, manifest.outputs(), "eval"), record.get("run_id")


def _ensure_base_eval(plan: PipelinePlan, manifest: Manifest, log: Log) -> None:
    """Evaluate the initial model (`base`) as soon as the eval's reward model exists: at once,
    or after the stage that trains it."""
    ref = plan.eval.reward_model if plan.eval is not None else None
    judge = ref.removeprefix(REF_PREFIX) if ref and ref.startswith(REF_PREFIX) else None
    if plan.base_model() and (judge is None or manifest.stage(judge).get("status") == "done"):
        _ensure_eval(plan, manifest, "base", plan.base_model(), None, log)


def _ensure_eval(plan: PipelinePlan, manifest: Manifest, name: str, model: str, run_id: str | None,
                 log: Log) -> None:
    """Evaluate `model` on the held-out rows unless OUTPUT/eval/NAME.json already holds this
    model run's results under the same eval settings and reward model (so a resumed run reuses
    them)."""
    if plan.eval is None:
        return
    reward_model, reward_model_run = _eval_reward_model(plan, manifest, name)
    record = {"stage": name, "model": model, "run_id": run_id, "eval_hash": plan.eval_hash,
              "reward_model": reward_model, "reward_model_run": reward_model_run}
    path = plan.output_dir / "eval" / f"{name}.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if all(old.get(key) == value for key, value in record.items()):
            return
    from pipelines.evaluate import evaluate

    settings = plan.eval
    sets = ", ".join(config.path for config in settings.rows_configs())
    log(f"[{plan.name}] evaluating {name} on {sets} (k={settings.k}, limit={settings.limit})")
    start = time.perf_counter()
    metrics = evaluate(model, settings.rows(), k=settings.k, engine=settings.engine, max_tokens=settings.max_tokens,
                       temperature=settings.temperature, stop=settings.stop, language=settings.language,
                       seed=settings.seed, reward_model=reward_model)  # sharded across processes, gathered on each
    if is_main_process():
        write_json_atomic(path, {**record, "seconds": time.perf_counter() - start, "metrics": metrics})
    barrier()


def _quiet(message: str) -> None:
    """The log of processes other than the main one: it alone reports."""


def console_log() -> Log:
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(message, markup=False, highlight=False, soft_wrap=True)
