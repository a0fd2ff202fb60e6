"""End to end, the way users run it: real servers, real deployments, a worker, the Prefect API.

A throwaway clone of the repository gets a tiny synthetic dataset (versioned with `dvc add`) and
small training parameters. A real `mlflow server` and a real `prefect server` start on free
localhost ports; `prefect deploy --all` deploys prefect.yaml to the `landcover-process` work pool
and a process worker runs what the API schedules: the training pipeline (every DVC stage), then
batch inference with the champion model. The test then checks the Prefect API (every flow and
task run Completed), the MLflow server (training run, registered model, `champion` alias), the
output rasters (valid COGs on the input grid) and `dvc status` (clean).

Every process is started in its own session and its whole process group is stopped at teardown,
whatever the outcome; server and worker logs are kept in tmp_path and their tails printed when the
test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the project's virtual environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

POOL = "landcover-process"
TRAINING = "training-pipeline/training-pipeline"
BATCH = "batch-inference/batch-inference"
CHANGE = "map-change/map-change"
MODEL_NAME = "landcover-segmentation"
EXPERIMENT = "landcover"

# small enough for a few minutes on 2 CPU cores, promotion floors at zero so a tiny model is champion
SMALL_PARAMS = {
    ("train", "epochs"): 2,
    ("train", "crop_size"): 32,
    ("train", "crops_per_tile"): 4,
    ("train", "val_crops_per_tile"): 2,
    ("train", "batch_size"): 8,
    ("train", "encoder_depth"): 3,
    ("inference", "window"): 64,
    ("inference", "overlap"): 16,
    ("promote", "min_miou"): 0.0,
    ("promote", "min_class_iou"): 0.0,
}
SYNTH = ["--cities", "6", "--tiles-per-city", "1", "--size", "96", "--seed", "11"]


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Services:
    """Background processes of one test, each in its own process group, stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, tuple[subprocess.Popen, Path]] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = (proc, log)
        return proc

    def wait_http(self, name: str, url: str, timeout: float = 180.0) -> None:
        proc, log = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode} before {url} answered:\n"
                                     f"{_tail(log)}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
            time.sleep(1)
        raise AssertionError(f"{name}: {url} did not answer within {timeout:.0f} s:\n{_tail(log)}")

    def dump(self) -> str:
        return "\n".join(f"\n===== {name} ({log}) =====\n{_tail(log, 120)}"
                         for name, (_, log) in self.procs.items())

    def stop_all(self, grace: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every process group (latest first), SIGKILL what is left after `grace` seconds."""
        for proc, _ in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc, _ in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc, _ in self.procs.values():
            # the group may outlive its leader (uvicorn children, flow-run processes)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        return {name: proc.poll() for name, (proc, _) in self.procs.items()}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, (f"{' '.join(cmd)} exited {proc.returncode}:\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


# --------------------------------------------------------------------------- fixtures


@pytest.fixture()
def services(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    svc = Services(logs)
    try:
        yield svc
    finally:
        left = svc.stop_all()
        still_running = [name for name, code in left.items() if code is None]
        assert not still_running, f"processes still running after teardown: {still_running}"


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    """A clone of the committed repository with a tiny DVC-tracked dataset and small params."""
    repo = tmp_path / "repo"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    _run(["git", "clone", "--quiet", str(REPO), str(repo)], tmp_path, env)
    _run([str(BIN / "landcover"), "synth", "--out", "data", *SYNTH, "--quiet"], repo, env)
    _run([sys.executable, "-m", "dvc", "add", "-q", "data"], repo, env)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    for (section, key), value in SMALL_PARAMS.items():
        assert key in params[section], f"params.yaml has no {section}.{key}"
        params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    git = ["git", "-c", "user.email=e2e@test", "-c", "user.name=e2e"]
    _run([*git, "add", "data.dvc", "params.yaml"], repo, env)
    _run([*git, "commit", "-q", "-m", "e2e: tiny dataset and params"], repo, env)
    return repo


# --------------------------------------------------------------------------- helpers (Prefect API)


def _wait_flow_run(client, flow_run_id, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            return run
        time.sleep(3)


def _flow_run_logs(client, flow_run_id, limit: int = 200) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=limit)
    return "\n".join(f"{log.timestamp:%H:%M:%S} {log.level:>2} {log.message}" for log in logs[-80:])


def _run_and_wait(client, name: str, parameters: dict, timeout: float):
    from prefect.deployments import run_deployment

    created = run_deployment(name=name, parameters=parameters, timeout=0)
    run = _wait_flow_run(client, created.id, timeout)
    assert run.state is not None and run.state.is_completed(), (
        f"{name}: flow run {run.name} ended {run.state and run.state.type.value} "
        f"({run.state and run.state.message}):\n{_flow_run_logs(client, run.id)}")
    return run


# --------------------------------------------------------------------------- the test


def test_servers_deployments_worker_pipeline_and_batch_inference(clone: Path, services: Services,
                                                                   tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    mlflow_port, prefect_port = free_port(), free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "MLFLOW_TRACKING_URI": mlflow_url,
        "LANDCOVER_REPO": str(clone),
        "PYTHONUNBUFFERED": "1",
    }
    for var in ("PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH", "MLFLOW_REGISTRY_URI",
                "PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        env.pop(var, None)

    try:
        t0 = time.monotonic()
        services.start("mlflow-server", [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination", str(tmp_path / "mlartifacts"),
        ], env, tmp_path)
        services.start("prefect-server", [
            str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port),
            "--analytics-off",
        ], env, tmp_path)
        services.wait_http("mlflow-server", f"{mlflow_url}/health")
        services.wait_http("prefect-server", f"{prefect_api}/health")
        print(f"\n[e2e] servers up in {time.monotonic() - t0:.0f} s "
              f"(mlflow {mlflow_url}, prefect {prefect_api})", flush=True)

        prefect = [str(BIN / "prefect"), "--no-prompt"]
        _run([*prefect, "work-pool", "create", POOL, "--type", "process"], clone, env)
        _run([*prefect, "deploy", "--all"], clone, env)
        services.start("worker", [*prefect, "worker", "start", "--pool", POOL, "--name", "e2e-worker"],
                       env, clone)
        print(f"[e2e] deployed and worker started at {time.monotonic() - t0:.0f} s", flush=True)

        with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                deployments = {f"{client.read_flow(d.flow_id).name}/{d.name}": d
                               for d in client.read_deployments(limit=50)}
                assert {TRAINING, BATCH, CHANGE, "validate-tiles/validate-tiles",
                        "map-region/map-region", "assess-map/assess-map"} <= set(deployments)
                assert all(d.work_pool_name == POOL for d in deployments.values())

                training = _run_and_wait(client, TRAINING, {}, timeout=800)
                print(f"[e2e] training pipeline {training.state.type.value} at "
                      f"{time.monotonic() - t0:.0f} s", flush=True)
                batch = _run_and_wait(client, BATCH, {"input": "data", "out": "outputs/batch"}, timeout=250)
                print(f"[e2e] batch inference {batch.state.type.value} at {time.monotonic() - t0:.0f} s",
                      flush=True)

                # the pipeline's test-tile maps against the batch run's, same champion: nothing changed
                change = _run_and_wait(client, CHANGE, {"before": "outputs/fuelmaps", "after": "outputs/batch",
                                                        "out": "outputs/change"}, timeout=200)
                print(f"[e2e] map change {change.state.type.value} at {time.monotonic() - t0:.0f} s", flush=True)

                _check_prefect_runs(client, {training.id, batch.id, change.id})

        _check_mlflow(mlflow_url, clone)
        _check_rasters(clone)
        changed = json.loads((clone / "outputs/change/change.json").read_text())
        # same champion, same tiles: the maps agree (a tolerance of 0.1 % for threading differences)
        assert changed["tiles_compared"] > 0 and changed["mapped_km2"] > 0, changed
        assert changed["changed_km2"] <= 0.001 * changed["mapped_km2"], changed
        assert (clone / "outputs/batch-areas/areas.json").is_file() and (clone / "outputs/areas/areas.json").is_file()
        status = _run([sys.executable, "-m", "dvc", "status", "--json"], clone, env)
        assert json.loads(status or "{}") == {}, f"dvc status is not clean: {status}"
        print(f"[e2e] all checks passed at {time.monotonic() - t0:.0f} s", flush=True)
    except BaseException:
        print(services.dump(), flush=True)
        raise


# --------------------------------------------------------------------------- checks


def _check_prefect_runs(client, expected_ids: set) -> None:
    """Every flow run on the server is one of ours and Completed; so is every task run."""
    from prefect.client.schemas.objects import StateType

    flow_runs = client.read_flow_runs(limit=200)
    states = {r.name: r.state.type for r in flow_runs}
    assert {r.id for r in flow_runs} == expected_ids, f"unexpected flow runs: {states}"
    assert all(t == StateType.COMPLETED for t in states.values()), states
    for run in flow_runs:  # scheduled through a deployment and picked up by the pool's worker
        assert run.deployment_id is not None and run.work_pool_name == POOL, run

    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(expected_ids))),
                                  limit=200)
    task_states = {t.name: t.state.type for t in tasks}
    assert all(t == StateType.COMPLETED for t in task_states.values()), task_states
    stages = {"validate", "split", "pack", "train", "evaluate", "promote", "predict"}
    assert stages <= set(task_states), f"missing DVC stage tasks: {sorted(stages - set(task_states))}"
    assert any(name.startswith("predict-") for name in task_states), task_states


def _check_mlflow(url: str, repo: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, f"experiment {EXPERIMENT!r} missing on {url}"
    run_id = json.loads((repo / "models/candidate/run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.experiment_id == exp.experiment_id and run.info.status == "FINISHED"
    assert run.data.metrics, "the training run logged no metrics"
    assert client.list_artifacts(run_id), "the training run has no artifacts on the server"

    assert client.get_registered_model(MODEL_NAME) is not None
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.run_id == run_id
    promotion = json.loads((repo / "metrics/promotion.json").read_text())
    assert promotion["alias"] == "champion" and str(promotion["version"]) == champion.version


def _check_rasters(repo: Path) -> None:
    import numpy as np
    import rasterio
    from rio_cogeo.cogeo import cog_validate

    tiles = sorted(p for p in (repo / "data/tiles").glob("*/*") if p.is_dir())
    assert tiles, "no input tiles"
    test_tiles = {(r["city_id"], r["tile_id"]) for r in _csv(repo / "splits/split.csv") if r["split"] == "test"}
    assert test_tiles
    fuel = yaml.safe_load((repo / "params.yaml").read_text())["fuel"]
    crosswalk = set(fuel["crosswalk"].values()) | {v for row in fuel.get("zones", {}).values() for v in row.values()}

    for out_root, selected in (("outputs/batch", tiles),
                               ("outputs/fuelmaps", [t for t in tiles if (t.parent.name, t.name) in test_tiles])):
        summary = json.loads((repo / out_root / "run_summary.json").read_text())
        assert summary["tiles_failed"] == 0, summary
        for tile in selected:
            out = repo / out_root / tile.parent.name / tile.name
            with rasterio.open(tile / "spring.tif") as ref:
                grid = (ref.crs, ref.transform, ref.shape)
            for name in ("landcover.tif", "fuel.tif", "confidence.tif"):
                path = out / name
                valid, errors, _ = cog_validate(str(path), quiet=True)
                assert valid, f"{path} is not a valid COG: {errors}"
                with rasterio.open(path) as src:
                    assert (src.crs, src.transform, src.shape) == grid, f"{path} is not on the input grid"
                    assert src.count == 1 and src.dtypes[0] == "uint8"
                    data = src.read(1)
                if name == "landcover.tif":
                    assert data.max() <= 10 and (data > 0).any(), path
                elif name == "fuel.tif":
                    assert set(np.unique(data).tolist()) <= crosswalk | {0}, path
                else:
                    assert data.max() <= 100, path
            prov = json.loads((out / "provenance.json").read_text())
            assert prov["model"]["name"] == MODEL_NAME and prov["model"]["run_id"]


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
