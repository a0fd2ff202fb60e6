"""Prefect flows call the stage code: batch inference on threads and on a Dask cluster gives the
same rasters as `landcover predict`, and publishes its summary artifact."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_TRAIN
from landcover.config import load_params
from landcover.inference.stage import run_predict


def _digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.tif"))}


def _params_file(tmp_path: Path, **predict: object) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in TINY_TRAIN.items():
        section, key = dotted.split(".")
        raw[section][key] = value
    raw["predict"].update(predict)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture()
def batch_inference(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("flows", None)
    from landcover.workflows.batch_inference import batch_inference

    return batch_inference


@pytest.fixture(scope="module")
def reference(tiny_dataset, tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "out"
    run_predict(load_params(REPO / "params.yaml", TINY_TRAIN), tiny_dataset, out, tiny_model.model_uri)
    return out


def test_batch_inference_flow_on_threads(batch_inference, prefect_harness, tiny_dataset, tiny_model, reference,
                                         tmp_path) -> None:
    from prefect.client.orchestration import get_client

    out = tmp_path / "out"
    summary = batch_inference(input=str(tiny_dataset), out=str(out), model_uri=tiny_model.model_uri,
                              params_file=str(_params_file(tmp_path, workers=2)))
    assert summary["tiles_written"] == 12 and summary["tiles_failed"] == 0
    assert _digest(out) == _digest(reference)
    assert summary["areas"]["areas_written"] == 6  # one map per city, beside the tiles
    assert all((tmp_path / "out-areas" / a["area"] / "landcover.tif").is_file() for a in summary["areas"]["areas"])
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {"inference-summary", "area-maps"} <= keys


@pytest.mark.slow
def test_batch_inference_flow_on_a_dask_cluster(batch_inference, prefect_harness, tiny_dataset, tiny_model,
                                                reference, tmp_path) -> None:
    """Scale-out is configuration only: the same flow with predict.dask_address set."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        out = tmp_path / "out"
        params_file = _params_file(tmp_path, dask_address=cluster.scheduler_address)
        summary = batch_inference(input=str(tiny_dataset), out=str(out), model_uri=tiny_model.model_uri,
                                  params_file=str(params_file))
    assert summary["tiles_written"] == 12
    assert _digest(out) == _digest(reference)


@pytest.mark.slow
def test_batch_inference_flow_writes_fire_model_landscapes_with_a_dem(batch_inference, prefect_harness, tiny_dataset,
                                                                      tiny_model, reference, tmp_path) -> None:
    """The flow's `dem` parameter turns on predict.landscape: each tile gets its LCP and ELMFIRE layers."""
    from test_landscape import plane_dem

    one = tmp_path / "input"
    tile = sorted((tiny_dataset / "tiles").iterdir())[0]
    shutil.copytree(tile, one / "tiles" / tile.name)
    shutil.copy(tiny_dataset / "cities.csv", one / "cities.csv")
    tile_id = sorted(p.name for p in tile.iterdir())[0]
    shutil.rmtree(one / "tiles" / tile.name / sorted(p.name for p in tile.iterdir())[1])
    plane_dem(tmp_path / "dem.tif", reference / tile.name / tile_id)
    summary = batch_inference(input=str(one), out=str(tmp_path / "out"), model_uri=tiny_model.model_uri,
                              params_file=str(_params_file(tmp_path)), dem=str(tmp_path / "dem.tif"))
    assert summary["tiles_written"] == 1 and summary["landscape"]["tiles_written"] == 1
    assert (tmp_path / "out" / tile.name / tile_id / "landscape.lcp").is_file()
    assert (tmp_path / "out" / tile.name / tile_id / "elmfire" / "fbfm40.tif").is_file()


@contextlib.contextmanager
def dask_processes(tmp_path: Path, workers: int = 2):
    """A scheduler and worker processes started as a user starts them (`dask scheduler`, `dask worker`),
    from a folder outside the repository and without it on the path: workers have only the installed
    package, so a task that needs `flows/` fails here as it fails on a real cluster."""
    from distributed import Client
    from prefect.settings import PREFECT_API_URL

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PREFECT_API_URL": PREFECT_API_URL.value(), "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
    spec = tmp_path / "scheduler.json"
    cwd = tmp_path / "cluster"
    cwd.mkdir()
    log = (tmp_path / "cluster.log").open("w")  # the scheduler's and workers' own logs, for a failure
    quiet = {"cwd": cwd, "env": env, "stdout": log, "stderr": subprocess.STDOUT}
    procs = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--scheduler-file", str(spec), "--port", "0",
                               "--no-dashboard"], **quiet)]
    try:
        for _ in range(600):
            if spec.is_file():
                break
            time.sleep(0.1)
        procs.append(subprocess.Popen([str(bin_dir / "dask"), "worker", "--scheduler-file", str(spec), "--nworkers",
                                       str(workers), "--nthreads", "1", "--no-dashboard"], **quiet))
        with Client(scheduler_file=str(spec), timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
            yield client
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=60)
        log.close()


@pytest.mark.slow
def test_batch_inference_on_scheduler_and_worker_processes(batch_inference, prefect_harness, tiny_dataset,
                                                           tiny_model, reference, tmp_path) -> None:
    """A real cluster: the flow's tasks run in worker processes that have only the installed package
    (no `flows` module), the model travels as its URI (no large graph), one worker is killed while the
    tiles are predicted, and the outputs are the single-process run's, byte for byte."""
    import psutil

    with dask_processes(tmp_path) as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = tmp_path / "out"
        params_file = _params_file(tmp_path, dask_address=client.scheduler.address)
        worker_pids = list(client.run(os.getpid).values())
        result: dict = {}
        run = threading.Thread(target=lambda: result.update(batch_inference(
            input=str(tiny_dataset), out=str(out), model_uri=tiny_model.model_uri, params_file=str(params_file))))
        run.start()
        for _ in range(600):  # kill a worker once the first tile is out
            if list(out.glob("*/*/provenance.json")):
                psutil.Process(worker_pids[0]).kill()
                break
            time.sleep(0.1)
        run.join(600)
    assert not [w for w in caught if "large graph" in str(w.message)]
    # a tile the killed worker had finished is found complete when its task runs again: skipped
    assert result["tiles_written"] + result["tiles_skipped"] == 12 and result["tiles_failed"] == 0
    assert _digest(out) == _digest(reference)
    assert not list(out.glob("*/*/.tmp-*"))  # no leftover of the killed worker's tile
