"""Running one planned stage of a pipeline: its data checked before any model loads, the
decision to skip, start, resume or restart it, its manifest record kept current, and the
held-out evaluation of the model it produced."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable

from grpo.files import write_json_atomic
from pipelines.config import ConfigError
from pipelines.distributed import barrier, broadcast_object, is_main_process
from pipelines.manifest import Manifest, decide, now
from pipelines.plan import REF_PREFIX, PipelinePlan, StagePlan, bind_ref, config_strings
from pipelines.recipe import STAGES, resolve, run_stage

Log = Callable[[str], None]


def check_stage_data(
    plan: PipelinePlan, manifest: Manifest, stages: list[StagePlan], *, fresh: bool
) -> None:
    """Read the data of every stage that is going to run, and the eval rows, before the first
    model loads: a bad file fails now, not after the stages before it have trained. A stage
    whose data comes from an earlier stage (`stage:NAME.KEY`) is checked when it starts."""
    if plan.eval is not None:
        plan.eval.rows()
    for st in stages:
        record = manifest.stage(st.name)
        unchanged = record.get("config_hash") == st.config_hash
        if not fresh and record.get("status") == "done" and unchanged:
            continue
        check = STAGES[st.kind].check_data
        data = {k: v for k, v in st.data.items() if k not in ("model", "base_model")}
        if check is None or any(s.startswith(REF_PREFIX) for s in config_strings(data)):
            continue
        try:
            check(resolve(st.data, where=f"stages.{st.name}")[1])
        except ConfigError as exc:
            raise ConfigError(f"stages.{st.name}: {exc}") from exc


def run_planned_stage(
    plan: PipelinePlan,
    manifest: Manifest,
    st: StagePlan,
    head: str,
    *,
    fresh: bool,
    log: Log,
    only: bool = False,
) -> None:
    names = plan.names
    inputs = {n: manifest.stage(n).get("run_id") for n in names[: names.index(st.name)]}
    record = manifest.stage(st.name)
    action, reason = decide(record, st.config_hash, inputs, fresh=fresh)
    log(
        f"{head}: {reason}"
        + (" (add --fresh to run it again)" if only and action == "skip" else "")
    )
    if action == "skip":
        return
    config = st.config_with_outputs(manifest.outputs())
    stage_dir = plan.output_dir / st.name
    if action == "restart" and stage_dir.exists() and is_main_process():
        shutil.rmtree(stage_dir)  # the pipeline owns OUTPUT/NAME: stale checkpoints must not resume
    barrier()
    if action in ("start", "restart"):
        record.clear()
        record.update(attempts=0, seconds=0.0, started=now())
    record.update(
        kind=st.kind,
        status="running",
        config_hash=st.config_hash,
        inputs=inputs,
        output_dir=str(stage_dir),
        attempts=record.get("attempts", 0) + 1,
    )
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
    record.update(
        status="done",
        outputs=json.loads(json.dumps(outputs or {}, default=str)),
        finished=now(),
        run_id=broadcast_object(uuid.uuid4().hex[:12]),
    )
    manifest.save()
    log(f"{head}: done in {record['seconds']:.1f}s")


def _eval_reward_model(
    plan: PipelinePlan, manifest: Manifest, name: str
) -> tuple[str | None, str | None]:
    """(path, run id) of the reward model that judges stage `name`'s evaluation. A `stage:JUDGE`
    reference judges the stages after JUDGE, and `base` (evaluated once JUDGE is done), with
    JUDGE's model; the stages up to JUDGE get None, whatever has run since, so a resumed run
    evaluates as an uninterrupted one. Anything else is used as given."""
    ref = plan.eval.reward_model if plan.eval is not None else None
    if ref is None or not ref.startswith(REF_PREFIX):
        return ref, None
    judge = ref.removeprefix(REF_PREFIX)
    record = manifest.stage(judge)
    before_judge = name != "base" and plan.names.index(name) <= plan.names.index(judge)
    if before_judge or record.get("status") != "done":
        return None, None
    return bind_ref(ref, manifest.outputs(), "eval"), record.get("run_id")


def ensure_base_eval(plan: PipelinePlan, manifest: Manifest, log: Log) -> None:
    """Evaluate the initial model (`base`) as soon as the eval's reward model exists: at once,
    or after the stage that trains it."""
    ref = plan.eval.reward_model if plan.eval is not None else None
    judge = ref.removeprefix(REF_PREFIX) if ref and ref.startswith(REF_PREFIX) else None
    if plan.base_model() and (judge is None or manifest.stage(judge).get("status") == "done"):
        ensure_eval(plan, manifest, "base", plan.base_model(), None, log)


def ensure_eval(
    plan: PipelinePlan, manifest: Manifest, name: str, model: str, run_id: str | None, log: Log
) -> None:
    """Evaluate `model` on the held-out rows unless OUTPUT/eval/NAME.json already holds this
    model run's results under the same eval settings and reward model (so a resumed run reuses
    them)."""
    if plan.eval is None:
        return
    reward_model, reward_model_run = _eval_reward_model(plan, manifest, name)
    record = {
        "stage": name,
        "model": model,
        "run_id": run_id,
        "eval_hash": plan.eval_hash,
        "reward_model": reward_model,
        "reward_model_run": reward_model_run,
    }
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
    metrics = evaluate(
        model,
        settings.rows(),
        engine=settings.engine,
        reward_model=reward_model,
        **settings.evaluate_kwargs(),
    )  # sharded across processes, gathered on each
    if is_main_process():
        write_json_atomic(
            path, {**record, "seconds": time.perf_counter() - start, "metrics": metrics}
        )
    barrier()
