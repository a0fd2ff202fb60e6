"""Accuracy assessment of a map against reference points, and the design of a sample to label.

One implementation behind `landcover assess`, the `assess-map` flow and (for the figures on test
tiles) the evaluate stage's points: read the points (any vector, a CSV with coordinates, LUCAS),
sample the map where each falls (any CRS), leave out and name the points outside the map, on its
nodata, or with a reference value the crosswalk does not compare, and estimate the confusion
matrix, overall, user's and producer's accuracy and the error-adjusted area of each class with 95 %
intervals (`landcover.accuracy`): stratified estimators when the points are a stratified sample
(their `stratum` attribute, with the strata sizes of `design.json` or the map's own), simple random
otherwise; the same per climate zone and per country when the points carry them. The report goes
to JSON, CSV, Markdown and a figure, and to MLflow with the model version the map came from.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landcover.accuracy import Assessment, assess
from landcover.assessment.design import Design, draw, plan_design
from landcover.assessment.maps import MapLayers
from landcover.classes import CLASSES
from landcover.config import Params
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json, atomic_write_text, read_json_record
from landcover.refpoints import ReferencePoints, points_from_params
from landcover.transitions import BASE

REPORT, ACCURACY, CONFUSION, SUMMARY, FIGURE = ("assessment.json", "accuracy.csv", "confusion.csv",
                                                "assessment.md", "confusion.png")
POINTS, DESIGN = "points.gpkg", "design.json"
NAMES = {c.code: c.name for c in CLASSES}


def code_name(code: int, kind: str) -> str:
    if kind == "transition":
        return f"{NAMES.get(code // BASE, code // BASE)} -> {NAMES.get(code % BASE, code % BASE)}"
    return NAMES.get(code, str(code))


@dataclass
class AssessResult:
    out: Path
    report: dict
    overall: Assessment
    excluded: dict[str, list[str]] = field(default_factory=dict)
    run_id: str | None = None


def load_points(p: Params, points: Path, kind: str = "landcover", attribute: str | None = None,
                preset: str | None = None) -> ReferencePoints:
    """The reference points with `reference` codes; for a change map, `from x 16 + to` codes from the
    before and after attributes."""
    pp = p.assess.points
    if kind != "transition":
        return points_from_params(pp, points, attribute, preset)
    before_attr, after_attr = (attribute.split(",") if attribute and "," in attribute
                               else (pp.attribute_before, pp.attribute_after))
    if not before_attr or not after_attr:
        raise LandcoverError(f"{points}: a change map needs the reference class before and after "
                             "(--attribute BEFORE,AFTER or assess.points.attribute_before / attribute_after)")
    before = points_from_params(pp, points, before_attr, preset)
    after = points_from_params(pp, points, after_attr, preset)
    b, a = before.codes, after.codes
    before.frame["reference"] = np.where((b > 0) & (a > 0), b * BASE + a, 0)
    before.frame["value"] = before.frame["value"] + " -> " + after.frame["value"]
    before.unmapped.update(after.unmapped)
    return before


def _stratum_sizes(layers: MapLayers, design_file: Path | None) -> tuple[dict, float | None, str]:
    if design_file is not None:
        record = read_json_record(design_file, "design record (written by landcover assess --design)")
        return ({int(k): float(v) for k, v in record["strata"].items()}, record.get("pixel_area_m2"),
                f"strata sizes from {design_file}")
    sizes, area = layers.strata()
    return {k: float(v) for k, v in sizes.items()}, area, f"strata sizes counted on {layers.folder}"


def run_assess(p: Params, map_dir: Path, points_file: Path, out: Path | None = None, *, attribute: str | None = None,
               preset: str | None = None, design_file: Path | None = None, log: bool = True) -> AssessResult:
    out = Path(out or p.assess.out)
    layers = MapLayers.discover(map_dir)
    pts = load_points(p, points_file, layers.kind, attribute, preset)
    frame = pts.frame
    codes, found = layers.sample(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy())
    ids = frame["point_id"].to_numpy()
    ref = pts.codes
    excluded = {"outside": ids[~found].tolist(), "nodata": ids[found & (codes == 0)].tolist(),
                "not_comparable": ids[found & (codes > 0) & (ref == 0)].tolist()}  # outside the map, on its
    # nodata, with a reference value the crosswalk does not compare
    used = found & (codes > 0) & (ref > 0)
    if not used.any():
        raise LandcoverError(f"{points_file}: no point falls on a mapped pixel of {map_dir} with a comparable "
                             f"reference: {len(excluded['outside'])} outside the map, {len(excluded['nodata'])} on its "
                             f"nodata, {len(excluded['not_comparable'])} not comparable")
    m, r = codes[used], ref[used]
    stratified = "stratum" in frame.columns and bool(frame["stratum"].notna().to_numpy()[used].all())
    notes = []
    pixel_area = None
    if stratified:
        try:
            strata = frame["stratum"].to_numpy()[used].astype(np.int64)
        except (TypeError, ValueError) as exc:
            raise LandcoverError(f"{points_file}: the stratum attribute must hold the map's class codes (as "
                                 f"`landcover assess --design` writes them): {exc}") from exc
        sizes, pixel_area, note = _stratum_sizes(layers, design_file)
        notes.append(note)
    else:
        strata, sizes = None, None
        if "stratum" not in frame.columns:
            notes.append("no stratum attribute: the points are taken as a simple random sample")
    fpc = p.assess.finite_population_correction
    try:
        overall = assess(m, r, strata, sizes, fpc=fpc)
    except ValueError as exc:
        raise LandcoverError(f"{points_file}: {exc} ({notes[-1] if notes else 'no design'})") from exc
    if pixel_area is None and not stratified:
        try:
            _, pixel_area = layers.strata()
        except LandcoverError as exc:
            notes.append(f"no areas: {exc}")
    population = sum(sizes.values()) if sizes else sum(sum(c.values()) for c in layers.pixel_counts())
    total_km2 = population * pixel_area / 1e6 if pixel_area else None
    report = {
        "map": str(map_dir), "kind": layers.kind, "points_file": str(points_file), "model": layers.model,
        "design": overall.design, "notes": notes,
        "points": {"read": int(len(frame)), "used": int(used.sum()),
                   **{k: len(v) for k, v in excluded.items()}},
        "unmapped_reference_values": dict(pts.unmapped.most_common()),
        "overall": _figures(overall, layers.kind, total_km2),
        "by_climate_zone": _breakdown(frame, used, "climate_zone", m, r, strata, sizes, fpc, layers.kind),
        "by_country": _breakdown(frame, used, "country", m, r, strata, sizes, fpc, layers.kind),
        "excluded_points": {k: v[:200] for k, v in excluded.items()},
    }
    write_report(out, report, overall, layers.kind)
    result = AssessResult(out, report, overall, excluded)
    if log:
        result.run_id = log_assessment(p, out, report)
    return result


def _breakdown(frame, used: np.ndarray, column: str, m, r, strata, sizes, fpc: bool, kind: str) -> dict:
    if column not in frame.columns:
        return {}
    values = frame[column].to_numpy()[used]
    out = {}
    for value in sorted({str(v) for v in values if v is not None and str(v) not in ("", "nan", "None")}):
        domain = np.array([str(v) == value for v in values])
        out[value] = _figures(assess(m, r, strata, sizes, domain=domain, fpc=fpc), kind, None)
    return out


def _figures(a: Assessment, kind: str, total_km2: float | None) -> dict:
    classes = {}
    for k, code in enumerate(a.classes):
        area = a.area_share[code]
        classes[str(code)] = {
            "name": code_name(code, kind), "points_mapped": int(a.counts[k].sum()),
            "points_reference": int(a.counts[:, k].sum()),
            "users_accuracy": a.users[code].as_dict(), "producers_accuracy": a.producers[code].as_dict(),
            "area_share": area.as_dict(6),
            **({"area_km2": round(area.value * total_km2, 3), "area_km2_ci95": round(area.half_width * total_km2, 3)}
               if total_km2 else {}),
            **({"mapped_km2": round(a.mapped_share[code] * total_km2, 3)} if total_km2 and a.mapped_share else {}),
        }
    return {"points": a.points, "overall_accuracy": a.overall.as_dict(), "classes": classes,
            "confusion": {"classes": a.classes, "counts": a.counts.tolist(),
                          "proportions": np.round(a.proportions, 6).tolist()},
            **({"total_km2": round(total_km2, 3)} if total_km2 else {})}


def write_report(out: Path, report: dict, a: Assessment, kind: str) -> None:
    from landcover.assessment.report import confusion_figure, markdown

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / REPORT, report)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["code", "name", "points_mapped", "points_reference", "users_accuracy", "users_ci95",
                     "producers_accuracy", "producers_ci95", "area_share", "area_share_ci95", "area_km2",
                     "area_km2_ci95", "mapped_km2"])
    for code, c in report["overall"]["classes"].items():
        writer.writerow([code, c["name"], c["points_mapped"], c["points_reference"], c["users_accuracy"]["value"],
                         c["users_accuracy"]["ci95"], c["producers_accuracy"]["value"], c["producers_accuracy"]["ci95"],
                         c["area_share"]["value"], c["area_share"]["ci95"], c.get("area_km2", ""),
                         c.get("area_km2_ci95", ""), c.get("mapped_km2", "")])
    atomic_write_text(out / ACCURACY, rows.getvalue())
    matrix = io.StringIO()
    writer = csv.writer(matrix)
    names = [code_name(c, kind) for c in a.classes]
    writer.writerow(["map \\ reference", *names, "total"])
    for name, row in zip(names, a.counts.tolist(), strict=True):
        writer.writerow([name, *row, sum(row)])
    writer.writerow(["total", *a.counts.sum(0).tolist(), int(a.counts.sum())])
    atomic_write_text(out / CONFUSION, matrix.getvalue())
    atomic_write_text(out / SUMMARY, markdown(report))
    confusion_figure(a, names, out / FIGURE)


def log_assessment(p: Params, out: Path, report: dict) -> str:
    """A run in the project's experiment: the figures as metrics, the report as artifacts, tagged with the
    model version the map came from (and on that model's training run's lineage, by tag)."""
    import mlflow

    from landcover.tracking import connect

    connect(p.tracking_uri(), p.mlflow.experiment)
    model = report.get("model") or {}
    overall = report["overall"]
    tags = {"landcover.stage": "assess", "landcover.map": report["map"], "landcover.points": report["points_file"],
            "landcover.design": report["design"]}
    for key in ("uri", "name", "version", "run_id"):
        if model.get(key):
            tags[f"landcover.model_{key}"] = str(model[key])
    with mlflow.start_run(run_name=f"assess {Path(report['map']).name}", tags=tags) as run:
        metrics = {"overall_accuracy": overall["overall_accuracy"]["value"],
                   "overall_accuracy_ci95": overall["overall_accuracy"]["ci95"],
                   "points_used": report["points"]["used"]}
        for code, c in overall["classes"].items():
            for what in ("users_accuracy", "producers_accuracy"):
                if c[what]["value"] is not None:
                    metrics[f"{what}_{code}"] = c[what]["value"]
        mlflow.log_metrics(metrics)
        for name in (REPORT, ACCURACY, CONFUSION, SUMMARY, FIGURE):
            mlflow.log_artifact(str(out / name), "assessment")
        return run.info.run_id


def run_design(p: Params, map_dir: Path, out: Path | None = None, *, target_se: float | None = None,
               minimum: int | None = None, seed: int | None = None) -> tuple[Path, Design]:
    """Draw a stratified random sample over the map: `points.gpkg` (pixel centres, in EPSG:4326 and the
    map's CRS, a `reference` column to fill in) and `design.json` (the strata sizes the estimates need)."""
    import geopandas as gpd
    from pyproj import Transformer

    dp = p.assess.design
    out = Path(out or p.assess.out)
    layers = MapLayers.discover(map_dir)
    design = plan_design(layers, target_se or dp.target_se, dp.expected_users_accuracy,
                         dp.min_per_stratum if minimum is None else minimum, dp.seed if seed is None else seed)
    drawn = draw(layers, design)
    lon, lat, map_x, map_y, crs = [], [], [], [], []
    for _code, k, x, y in drawn:
        raster = layers.rasters[k]
        a, b = Transformer.from_crs(raster.crs, 4326, always_xy=True).transform(x, y)
        lon.append(a)
        lat.append(b)
        map_x.append(x)
        map_y.append(y)
        crs.append(raster.crs.to_string())
    strata = [code for code, *_ in drawn]
    frame = gpd.GeoDataFrame({
        "point_id": [f"s{k:06d}" for k in range(len(drawn))], "stratum": strata,
        "stratum_name": [code_name(c, layers.kind) for c in strata], "map_x": map_x, "map_y": map_y, "map_crs": crs,
        "reference": [""] * len(drawn)}, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{POINTS}"
    frame.to_file(tmp, driver="GPKG", layer="points")
    tmp.replace(out / POINTS)
    atomic_write_json(out / DESIGN, {"map": str(map_dir), "kind": layers.kind, **design.record()})
    return out / POINTS, design


def read_report(out: Path) -> dict:
    return json.loads((Path(out) / REPORT).read_text())
