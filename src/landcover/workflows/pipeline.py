"""Training pipeline flow: validate -> split -> pack -> train -> evaluate -> promote -> predict (test tiles).

Each task runs one stage through DVC (`dvc repro --single-item <stage>`), so the Prefect door and
`dvc repro` execute the same command, stages whose inputs did not change are skipped, and
dvc.lock stays true whichever door was used. After each stage the flow publishes what it produced
as a Prefect artifact.

Run: `python flows/pipeline.py` or the `training-pipeline` deployment (prefect.yaml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from landcover import reporting

# stages whose failure is most likely transient I/O (tracking server, registry, object storage)
RETRIES = {"promote": 2, "predict": 1}


NOISE = ("Downloading artifacts", "it/s]", "━━")  # progress-bar redraws


class StageFailed(RuntimeError):
    pass


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, repo: str, force: bool = False) -> str:
    """Run one DVC stage; its own log goes to the Prefect log, a failure names the stage."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage] + (["--force"] if force else [])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # streamed: long stages show progress in the Prefect log
            line = line.rstrip().rsplit("\r", 1)[-1]
            if line.strip() and not any(noise in line for noise in NOISE):
                lines.append(line)
                logger.info(line)
    if proc.returncode != 0:
        tail = lines[-1] if lines else "(no output)"
        raise StageFailed(f"stage {stage} failed (exit {proc.returncode}): {tail}")
    return "\n".join(lines)


def pipeline_stages(repo: Path) -> list[str]:
    """The stages dvc.yaml declares, in its order: a stage added there is run here too."""
    return list(yaml.safe_load((Path(repo) / "dvc.yaml").read_text())["stages"])


def _metrics_files(stage: str, repo: Path) -> list[Path]:
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage].get("metrics", [])
    return [repo / (next(iter(m)) if isinstance(m, dict) else m) for m in declared]


def _publish(stage: str, repo: Path) -> None:
    docs = {
        "validate": ("validation-summary",
                     lambda: reporting.validation_markdown(repo / "reports/validation/summary.json")),
        "split": ("split-statistics", lambda: reporting.split_markdown(repo / "metrics/split.json")),
        "pack": ("training-store", lambda: reporting.pack_markdown(repo / "metrics/pack.json")),
        "evaluate": ("evaluation-report", lambda: reporting.evaluation_markdown(repo / "metrics/evaluate.json")),
        "promote": ("promotion-decision", lambda: reporting.promotion_markdown(repo / "metrics/promotion.json")),
        "predict": ("inference-summary",
                    lambda: reporting.inference_markdown(repo / "outputs/fuelmaps/run_summary.json")),
        "areas": ("area-maps", lambda: reporting.areas_markdown(repo / "outputs/areas/areas.json")),
    }
    if stage in docs:
        key, build = docs[stage]
        create_markdown_artifact(key=key, markdown=build(), description=f"{stage} stage")
    elif _metrics_files(stage, repo):  # a stage without a summary of its own: its declared metrics
        create_markdown_artifact(key=f"{stage}-metrics", markdown=reporting.metrics_markdown(
            stage, _metrics_files(stage, repo)), description=f"{stage} stage")


@flow(name="training-pipeline", log_prints=True)
def training_pipeline(repo: str = ".", force: bool = False, stages: list[str] | None = None) -> dict:
    """Validate, split, train, evaluate, promote, predict the test tiles and map each test city, as DVC stages.

    Args:
        repo: Repository root holding dvc.yaml and params.yaml (the worker's working directory).
        force: Re-run stages even when DVC finds them up to date.
        stages: Subset of stages to run, in pipeline order (default: all).
    """
    repo_path = Path(repo).resolve()
    chosen = [s for s in pipeline_stages(repo_path) if stages is None or s in stages]
    for stage in chosen:
        run_stage.with_options(retries=RETRIES.get(stage, 0), retry_delay_seconds=10)(stage, str(repo_path), force)
        _publish(stage, repo_path)
    decision = json.loads((repo_path / "metrics/promotion.json").read_text()) \
        if (repo_path / "metrics/promotion.json").exists() else {}
    print(f"pipeline done: stages {', '.join(chosen)}; promotion: {decision.get('alias', 'n/a')}")
    return {"stages": chosen, "promotion": decision}


def main(argv: list[str] | None = None) -> None:
    """`python flows/pipeline.py`: the flow from the command line, on the current folder."""
    training_pipeline()
