"""`landcover assess` on a fabricated map with a known truth: a stratified sample drawn by `--design`,
labelled from the truth raster, gives the estimates the closed forms give for its counts; points in
another CRS land on the right pixels; points outside the map or on nodata are counted and named;
LUCAS points are crosswalked; a change map is assessed by its transitions; the report reaches MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import mlflow
import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from conftest import REPO
from landcover.config import load_params
from landcover.errors import LandcoverError

WEST, NORTH, RES = 4_000_000.0, 2_500_000.0, 10.0  # EPSG:3035
CELLS = {"100kmE40N24": (0, 200), "100kmE40N24b": (200, 100)}  # name: (column offset, width); 150 rows each
HEIGHT = 150


def _map_and_truth() -> tuple[np.ndarray, np.ndarray]:
    """A 150 x 300 map: water, grassland, agriculture and broadleaved forest in blocks, a rare shrub
    patch and a nodata strip; the truth differs in known places (a fifth of the agriculture block is
    grassland, the shrub patch is half grassland, some forest is coniferous)."""
    mapped = np.zeros((HEIGHT, 300), np.uint8)
    mapped[:, :60] = 5
    mapped[:, 60:150] = 6
    mapped[:, 150:250] = 7
    mapped[:, 250:] = 8
    mapped[20:40, 100:120] = 10  # rare: 400 px
    mapped[140:, :] = 0  # nodata strip
    truth = mapped.copy()
    truth[:, 150:170] = np.where(mapped[:, 150:170] == 7, 6, truth[:, 150:170])
    truth[20:30, 100:120] = 6
    truth[:50, 250:] = 9
    return mapped, truth


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory):
    root = tmp_path_factory.mktemp("assess")
    mapped, truth = _map_and_truth()
    for name, (c0, width) in CELLS.items():
        folder = root / "eea" / "region" / name
        folder.mkdir(parents=True)
        profile = dict(driver="GTiff", width=width, height=HEIGHT, count=1, dtype="uint8", crs="EPSG:3035",
                       transform=from_origin(WEST + c0 * RES, NORTH, RES, RES), nodata=0)
        with rasterio.open(folder / "landcover.tif", "w", **profile) as dst:
            dst.write(mapped[:, c0:c0 + width], 1)
        with rasterio.open(folder / "confidence.tif", "w", **profile) as dst:
            dst.write(np.where(mapped[:, c0:c0 + width] > 0, 80, 0).astype(np.uint8), 1)
        (folder / "provenance.json").write_text(json.dumps({"models": [{"uri": "models:/landcover/3", "name":
                                                                        "landcover", "version": "3", "run_id": "r1"}]}))
    with rasterio.open(root / "truth.tif", "w", driver="GTiff", width=300, height=HEIGHT, count=1, dtype="uint8",
                       crs="EPSG:3035", transform=from_origin(WEST, NORTH, RES, RES), nodata=0) as dst:
        dst.write(truth, 1)
    return root


def _params(**more):
    return load_params(REPO / "params.yaml", more)


def _pixel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.floor((NORTH - y) / RES).astype(int), np.floor((x - WEST) / RES).astype(int)


def test_a_stratified_design_labelled_from_the_truth_gives_the_closed_forms(fabricated, mlflow_store,
                                                                             tmp_path) -> None:
    from landcover.assessment.stage import run_assess, run_design

    mapped, truth = _map_and_truth()
    p = _params(**{"assess.design.target_se": 0.02, "assess.design.min_per_stratum": 30})
    points_file, design = run_design(p, fabricated / "eea", tmp_path / "design")
    # the strata are the map's classes with their pixel counts; the sample size is eq. 13's
    codes, pixels = np.unique(mapped[mapped > 0], return_counts=True)
    assert design.strata == dict(zip(codes.tolist(), pixels.tolist(), strict=True))
    w = pixels / pixels.sum()
    assert design.n >= int(np.ceil((np.sum(w * np.sqrt(0.8 * 0.2)) / 0.02) ** 2))
    assert design.allocation[10] == 30  # the rare class raised to the floor
    points = gpd.read_file(points_file)
    assert points.crs.to_epsg() == 4326 and len(points) == design.n
    rows, cols = _pixel(points["map_x"].to_numpy(), points["map_y"].to_numpy())
    assert np.array_equal(mapped[rows, cols], points["stratum"].to_numpy())  # each on a pixel of its stratum
    assert np.allclose((points["map_x"] - WEST) % RES, RES / 2)  # pixel centres
    assert len(set(zip(rows, cols, strict=True))) == len(points)  # no pixel twice

    # the labeller's work: each point's reference class from the truth
    points["reference"] = truth[rows, cols].astype(str)
    labelled = tmp_path / "labelled.gpkg"
    points.to_file(labelled)
    result = run_assess(p, fabricated / "eea", labelled, tmp_path / "report",
                        design_file=tmp_path / "design" / "design.json")
    report = result.report
    assert report["design"] == "stratified" and report["points"]["used"] == design.n

    # the closed forms of Olofsson et al. (2014), eqs. 2-10, from the counts and the strata sizes
    classes = sorted(set(codes.tolist()) | set(np.unique(truth[truth > 0]).tolist()))
    k = {c: i for i, c in enumerate(classes)}
    n = np.zeros((len(classes), len(classes)))
    for a, b in zip(points["stratum"], truth[rows, cols], strict=True):
        n[k[a], k[b]] += 1
    W = np.array([design.strata.get(c, 0) for c in classes], float) / pixels.sum()
    n_i = np.maximum(n.sum(1), 1)
    p_ij = W[:, None] * n / n_i[:, None]
    overall = np.trace(p_ij)
    U = np.diag(n) / n_i
    np.seterr(divide="ignore", invalid="ignore")  # strata of one point: no variance term (masked below)
    se_overall = np.sqrt(np.sum(np.where(n.sum(1) > 1, W ** 2 * U * (1 - U) / (n_i - 1), 0)))
    figures = report["overall"]
    assert figures["overall_accuracy"]["value"] == pytest.approx(overall, abs=1e-4)
    assert figures["overall_accuracy"]["se"] == pytest.approx(se_overall, abs=1e-4)
    total_km2 = pixels.sum() * RES * RES / 1e6
    for c in classes:
        share = p_ij[:, k[c]].sum()
        se = np.sqrt(np.sum(np.where(n.sum(1) > 1, W ** 2 * (n[:, k[c]] / n_i) * (1 - n[:, k[c]] / n_i) / (n_i - 1),
                                     0)))
        row = figures["classes"][str(c)]
        assert row["area_share"]["value"] == pytest.approx(share, abs=1e-6)
        assert row["area_km2"] == pytest.approx(share * total_km2, abs=1e-3)
        assert row["area_km2_ci95"] == pytest.approx(1.96 * se * total_km2, abs=1e-3)
        true_share = (truth == c).sum() / (truth > 0).sum()
        assert abs(share - true_share) <= 3.5 * max(se, 1e-9)  # the estimate covers the truth
        if c in design.strata:
            assert row["users_accuracy"]["value"] == pytest.approx(U[k[c]], abs=1e-4)
            assert row["mapped_km2"] == pytest.approx(design.strata[c] * RES * RES / 1e6, abs=1e-3)
    assert figures["classes"]["9"]["users_accuracy"]["value"] is None  # never mapped: undefined, not 0
    for name in ("assessment.json", "accuracy.csv", "confusion.csv", "assessment.md", "confusion.png"):
        assert (tmp_path / "report" / name).is_file()

    # logged to MLflow with the model version the map came from
    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    assert run.data.tags["landcover.model_version"] == "3"
    assert run.data.metrics["overall_accuracy"] == pytest.approx(figures["overall_accuracy"]["value"])
    # without the design file the strata sizes are counted on the same map: the same figures
    again = run_assess(p, fabricated / "eea", labelled, tmp_path / "again", log=False)
    assert again.report["overall"] == report["overall"]


def test_points_in_another_crs_outside_and_on_nodata(fabricated, tmp_path) -> None:
    from landcover.assessment.stage import run_assess

    mapped, truth = _map_and_truth()
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 140, 40), rng.integers(0, 300, 40)
    x, y = WEST + (cols + 0.5) * RES, NORTH - (rows + 0.5) * RES
    e, n = Transformer.from_crs(3035, 32631, always_xy=True).transform(x, y)
    table = pd.DataFrame({"id": [f"in{i}" for i in range(40)], "easting": e, "northing": n,
                          "class": truth[rows, cols]})
    lon, lat = Transformer.from_crs(3035, 4326, always_xy=True).transform([WEST - 500, WEST + 50], [NORTH + 50,
                                                                                                    NORTH - 1455])
    ue, un = Transformer.from_crs(4326, 32631, always_xy=True).transform(lon, lat)
    extra = pd.DataFrame({"id": ["outside", "strip"], "easting": ue, "northing": un, "class": [6, 6]})
    pd.concat([table, extra]).to_csv(tmp_path / "points.csv", index=False)
    p = _params(**{"assess.points.x": "easting", "assess.points.y": "northing", "assess.points.crs": "EPSG:32631",
                   "assess.points.attribute": "class"})
    result = run_assess(p, fabricated / "eea", tmp_path / "points.csv", tmp_path / "out", log=False)
    assert result.excluded["outside"] == ["outside"] and result.excluded["nodata"] == ["strip"]
    assert result.report["design"] == "simple random" and result.report["points"]["used"] == 40
    # each point sampled on its own pixel: the counts are map (read here) against reference
    counts = result.overall.counts
    classes = result.overall.classes
    want = np.zeros_like(counts)
    for a, b in zip(mapped[rows, cols], truth[rows, cols], strict=True):
        want[classes.index(a), classes.index(b)] += 1
    assert np.array_equal(counts, want)


def test_lucas_points_are_crosswalked_and_broken_down_by_country(fabricated, tmp_path) -> None:
    from landcover.assessment.stage import run_assess

    rows = np.array([5, 5, 60, 60, 100, 100, 120, 30])
    cols = np.array([10, 80, 200, 280, 30, 90, 260, 160])
    lon, lat = Transformer.from_crs(3035, 4326, always_xy=True).transform(WEST + (cols + 0.5) * RES,
                                                                          NORTH - (rows + 0.5) * RES)
    lc1 = ["G11", "E20", "B11", "C21", "G21", "E10", "C10", "G50"]  # the last: glacier, not comparable
    pd.DataFrame({"POINT_ID": range(47001, 47009), "TH_LAT": lat, "TH_LONG": lon, "LC1": lc1,
                  "NUTS0": ["FR"] * 4 + ["IT"] * 4}).to_csv(tmp_path / "lucas.csv", index=False)
    result = run_assess(_params(), fabricated / "eea", tmp_path / "lucas.csv", tmp_path / "out", preset="lucas",
                        log=False)
    report = result.report
    assert report["points"]["not_comparable"] == 1 and report["unmapped_reference_values"] == {"G50": 1}
    assert result.excluded["not_comparable"] == ["47008"]
    # map: water, grassland, agriculture, broadleaved | water, grassland, broadleaved; reference from LC1
    assert set(report["by_country"]) == {"FR", "IT"}
    assert report["by_country"]["FR"]["overall_accuracy"]["value"] == pytest.approx(3 / 4)  # C21 on broadleaved
    assert report["by_country"]["IT"]["overall_accuracy"]["value"] == pytest.approx(1.0)


def test_a_change_map_is_assessed_by_its_transitions(tmp_path) -> None:
    from landcover.assessment.stage import run_assess, run_design

    transitions = np.full((60, 80), 7 * 16 + 7, np.uint8)  # agriculture stays
    transitions[:, 60:] = 8 * 16 + 2  # forest to urban
    folder = tmp_path / "change" / "c1" / "r00c00"
    folder.mkdir(parents=True)
    with rasterio.open(folder / "transition.tif", "w", driver="GTiff", width=80, height=60, count=1, dtype="uint8",
                       crs="EPSG:32632", transform=from_origin(500_000, 5_000_000, 10, 10), nodata=0) as dst:
        dst.write(transitions, 1)
    p = _params(**{"assess.design.min_per_stratum": 10, "assess.design.target_se": 0.05,
                   "assess.points.attribute_before": "before", "assess.points.attribute_after": "after"})
    points_file, design = run_design(p, tmp_path / "change", tmp_path / "design")
    assert set(design.strata) == {7 * 16 + 7, 8 * 16 + 2}
    points = gpd.read_file(points_file)
    assert set(points["stratum_name"]) == {"Agricultural -> Agricultural", "Broadleaved Forest -> Urban"}
    change = points["stratum"] == 8 * 16 + 2
    points["before"] = np.where(change, "8", "7")
    points["after"] = np.where(change, "2", "7")
    points.loc[points.index[change][:2], "after"] = "8"  # two 'changes' that did not happen
    points.to_file(tmp_path / "labelled.gpkg")
    result = run_assess(p, tmp_path / "change", tmp_path / "labelled.gpkg", tmp_path / "out",
                        design_file=tmp_path / "design" / "design.json", log=False)
    users = result.report["overall"]["classes"][str(8 * 16 + 2)]["users_accuracy"]["value"]
    assert users == pytest.approx((change.sum() - 2) / change.sum(), abs=1e-4)
    assert result.report["overall"]["classes"][str(8 * 16 + 8)]["name"] == "Broadleaved Forest -> Broadleaved Forest"


def test_bad_input_is_refused_by_name_and_the_cli_runs(fabricated, tmp_path) -> None:
    from landcover.assessment.stage import run_assess

    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "nocoords.csv", index=False)
    with pytest.raises(LandcoverError, match="nocoords.csv: no coordinate columns"):
        run_assess(_params(), fabricated / "eea", tmp_path / "nocoords.csv", tmp_path / "o", log=False)
    with pytest.raises(LandcoverError, match="empty: no landcover.tif"):
        (tmp_path / "empty").mkdir()
        run_assess(_params(), tmp_path / "empty", tmp_path / "nocoords.csv", tmp_path / "o", log=False)
    pd.DataFrame({"lon": [0.0], "lat": [0.0], "reference": [5]}).to_csv(tmp_path / "far.csv", index=False)
    with pytest.raises(LandcoverError, match="far.csv: no point falls on a mapped pixel .*: 1 outside the map"):
        run_assess(_params(), fabricated / "eea", tmp_path / "far.csv", tmp_path / "o", log=False)

    done = subprocess.run([str(Path(sys.executable).parent / "landcover"), "assess", "--map", str(fabricated / "eea"),
                           "--design", "--out", str(tmp_path / "cli"), "--target-se", "0.05", "--min-per-stratum", "5"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "design:" in done.stdout and (tmp_path / "cli" / "points.gpkg").is_file()


def test_the_assess_map_flow_publishes_the_report(fabricated, prefect_harness, mlflow_store, tmp_path) -> None:
    from prefect.client.orchestration import get_client

    from landcover.workflows.assess_map import assess_map

    mapped, truth = _map_and_truth()
    rows, cols = np.arange(0, 140, 7), np.arange(0, 300, 15)
    lon, lat = Transformer.from_crs(3035, 4326, always_xy=True).transform(WEST + (cols + 0.5) * RES,
                                                                          NORTH - (rows + 0.5) * RES)
    pd.DataFrame({"lon": lon, "lat": lat, "reference": truth[rows, cols]}).to_csv(tmp_path / "p.csv", index=False)
    summary = assess_map(str(fabricated / "eea"), str(tmp_path / "p.csv"), str(tmp_path / "out"))
    right = (mapped[rows, cols] == truth[rows, cols]).mean()
    assert summary["overall_accuracy"]["value"] == pytest.approx(right, abs=1e-4) and summary["run_id"]

    async def artifact() -> str:
        async with get_client() as client:
            found = await client.read_artifacts()
            return next(a.data for a in found if a.key == "map-accuracy")

    import asyncio

    assert "Overall accuracy" in asyncio.run(artifact())
