"""`make demo`: the whole story on the embedded defaults.

Generates the synthetic dataset if `data/` is absent and versions it with DVC, runs the training
pipeline flow (validate, split, train, evaluate, promote, predict the test tiles, map each test
city, each as a DVC stage) with a local Prefect server, and says where everything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

# a loaded 2-core machine can take longer than Prefect's default 20 s to start its temporary server
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from landcover.config import load_params  # noqa: E402
from landcover.synth.stage import run_synth


def _dvc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], check=True)


def main() -> int:
    start = time.perf_counter()
    params = load_params("params.yaml")
    data = Path(params.data.root)
    if not data.exists():
        s = params.synth
        print(f"generating the synthetic dataset: {s.cities} cities x {s.tiles_per_city} tiles of {s.size} px "
              f"-> {data}/", flush=True)
        run_synth(params, data, progress=lambda d, t, w: print(f"  [{d}/{t}] {w}", flush=True))
        _dvc("add", "-q", str(data))
    else:
        print(f"{data}/ exists: keeping it", flush=True)

    from landcover.workflows.pipeline import training_pipeline

    result = training_pipeline(repo=".")
    minutes = (time.perf_counter() - start) / 60
    promotion = result.get("promotion", {})
    evaluation = json.loads(Path("metrics/evaluate.json").read_text())
    print(f"""
Demo finished in {minutes:.1f} min.
  test mIoU           {evaluation['miou']:.3f} ({evaluation['tiles']} test tiles)
  promotion           version {promotion.get('version')} -> {promotion.get('alias')}
  fuel maps           outputs/fuelmaps/<city_id>/<tile_id>/{{landcover,fuel,confidence}}.tif
                      (+ provenance.json, item.json: a STAC Item; .qml/.sld styles)
  area maps           outputs/areas/<city_id>/{{landcover,fuel,confidence}}.{{tif,vrt}}: one styled map per
                      test city (open the .tif in QGIS)
  validation report   reports/validation/report.csv; Data Docs: reports/validation/data_docs/index.html
  evaluation report   reports/evaluation/ (confusion_matrix.png, per_class_iou.png, metrics.json)
  metrics and plots   .venv/bin/dvc metrics show; .venv/bin/dvc plots show (writes dvc_plots/index.html)
  MLflow UI           make mlflow-ui  -> http://127.0.0.1:5000 (model registry: '{params.mlflow.model_name}')
  Prefect UI          make prefect-ui -> http://127.0.0.1:4200 (flow runs of this demo are kept in .prefect/)
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
