"""Reference points as users hold them: a vector file, or a CSV with coordinate columns (LUCAS as
Eurostat publishes it), each point's reference value crosswalked to the 10 land cover classes.

The `lucas` preset reads the LUCAS survey's primary land cover (`LC1`, e.g. `C21`) at the point's
theoretical coordinates (`TH_LAT`, `TH_LONG`), with `POINT_ID` and the country (`NUTS0`), in the
column spellings of both the yearly microdata and the harmonised 2006-2018 table (lower case).
What the crosswalk can and cannot compare: docs/accuracy.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.classes import CLASSES
from landcover.dataset import DataContractError
from landcover.vectors import read_vector

# LUCAS LC1 (2018 nomenclature; the longest matching prefix wins) -> land cover code, 0 = not comparable
LUCAS_LC1: dict[str, int] = {
    "A11": 2, "A12": 2, "A13": 2,  # buildings (1-3 floors, higher), greenhouses: Urban
    "A21": 2,  # non built-up area features (yards, parking): Urban
    "A22": 1,  # non built-up linear features (roads, railways): Roads
    "A30": 3,  # other artificial areas (dumps, construction sites): Bare Surfaces (approximate)
    "B": 7,  # cropland, permanent crops included: Agricultural
    "C10": 8,  # broadleaved woodland
    "C21": 9, "C22": 9, "C23": 9,  # coniferous woodland
    "C31": 9, "C32": 9,  # spruce- and pine-dominated mixed woodland: Coniferous (approximate)
    "C33": 8,  # other mixed woodland: Broadleaved (approximate)
    "D": 10,  # shrubland, with or without sparse trees
    "E": 6,  # grassland (sparse trees and shrubs included), re-vegetated surfaces
    "F": 3,  # bare land, lichens and moss
    "G1": 5, "G2": 5, "G3": 5,  # inland water bodies and running water, transitional water
    "G4": 0, "G5": 0,  # glaciers and permanent snow (G40 in older surveys, G50 in 2018): no class
    "H": 4,  # inland and coastal wetlands
}
PRESETS = {"lucas": {"x": "th_long", "y": "th_lat", "crs": "EPSG:4326", "id": "point_id", "attribute": "lc1",
                     "country": "nuts0", "prefixes": LUCAS_LC1}}
X_COLUMNS = ("x", "lon", "long", "longitude", "th_long", "gps_long")
Y_COLUMNS = ("y", "lat", "latitude", "th_lat", "gps_lat")


@dataclass
class ReferencePoints:
    """Points in EPSG:4326 with their reference class (0 = a value the crosswalk does not compare)."""

    frame: object  # GeoDataFrame: point_id, reference, value (as read), geometry; stratum/zone/country if given
    source: Path
    unmapped: Counter  # value -> points the crosswalk leaves out

    @property
    def codes(self) -> np.ndarray:
        return self.frame["reference"].to_numpy(np.int64)


def _column(frame, wanted: str | None, candidates: tuple[str, ...] = ()) -> str | None:
    lower = {c.lower(): c for c in frame.columns}
    for name in (wanted, *candidates):
        if name and name.lower() in lower:
            return lower[name.lower()]
    return None


def _read(path: Path, x: str | None, y: str | None, crs: str | None):
    import geopandas as gpd
    import pandas as pd

    if path.suffix.lower() not in (".csv", ".txt"):
        return read_vector(path, "reference points")
    if not path.is_file():
        raise DataContractError(f"{path}: reference points file not found")
    try:
        table = pd.read_csv(path, low_memory=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure names the file
        raise DataContractError(f"{path}: cannot read the reference points: {exc}") from exc
    cx, cy = _column(table, x, X_COLUMNS), _column(table, y, Y_COLUMNS)
    if cx is None or cy is None:
        raise DataContractError(f"{path}: no coordinate columns (give the x and y columns; it has "
                                f"{', '.join(map(str, table.columns))})")
    xy = table[[cx, cy]].apply(pd.to_numeric, errors="coerce")
    bad = xy.isna().any(axis=1)
    if bad.all():
        raise DataContractError(f"{path}: no point has numeric coordinates in {cx!r} and {cy!r}")
    table = table[~bad]
    return gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(xy[cx][~bad], xy[cy][~bad]), crs=crs or "EPSG:4326")


def crosswalk_value(value: object, table: dict[str, int], prefixes: bool) -> int | None:
    text = str(value).strip()
    if not prefixes:
        if text in table:
            return table[text]
        try:  # numeric reference values as written in params (1 and 1.0 are one value)
            number = float(text)
        except ValueError:
            return None
        key = str(int(number)) if number.is_integer() else text
        return table.get(key)
    for length in range(len(text), 0, -1):
        if text[:length].upper() in table:
            return table[text[:length].upper()]
    return None


def read_points(path: Path, attribute: str | None = None, crosswalk: dict | None = None, preset: str | None = None,
                x: str | None = None, y: str | None = None, crs: str | None = None, id_column: str | None = None,
                extra: dict[str, str] | None = None) -> ReferencePoints:
    """The points of `path` with `reference` codes: `attribute` through `crosswalk` ({value: code}), or
    the preset's; without a crosswalk the attribute must hold land cover codes (or class names).
    `extra` ({name: column}) copies optional attributes (stratum, climate zone, country) when present."""
    path = Path(path)
    if preset and preset not in PRESETS:
        raise DataContractError(f"unknown reference points preset {preset!r} (known: {', '.join(PRESETS)})")
    spec = dict(PRESETS[preset]) if preset else {}
    frame = _read(path, x or spec.get("x"), y or spec.get("y"), crs or spec.get("crs"))
    if frame.empty:
        raise DataContractError(f"{path}: reference points has no features")
    wanted = attribute or spec.get("attribute") or "reference"  # the column `landcover assess --design` writes
    column = _column(frame, wanted)
    if column is None:
        raise DataContractError(f"{path}: no attribute {wanted!r} with the reference class (it has "
                                f"{', '.join(c for c in frame.columns if c != 'geometry')})")
    if not frame.geometry.geom_type.eq("Point").all():
        raise DataContractError(f"{path}: reference points must be points (found "
                                f"{', '.join(sorted(set(frame.geometry.geom_type) - {'Point'}))})")
    names = {c.name.lower(): c.code for c in CLASSES}
    if crosswalk is not None:
        table, prefixes = {str(k): int(v) for k, v in crosswalk.items()}, False
    elif spec:
        table, prefixes = spec["prefixes"], True
    else:
        table = {**{str(c.code): c.code for c in CLASSES}, **{k: v for k, v in names.items()}}
        prefixes = False
    values = frame[column]
    codes, unmapped = [], Counter()
    for value in values:
        code = crosswalk_value(value if prefixes or crosswalk is not None else str(value).strip().lower(), table,
                               prefixes)
        if code is None or code == 0:
            unmapped[str(value)] += 1
        codes.append(code or 0)
    import geopandas as gpd

    ids = _column(frame, id_column or spec.get("id"), ("point_id", "id"))
    columns = {"point_id": frame[ids].astype(str).to_numpy() if ids else [f"p{k}" for k in range(len(frame))],
               "value": values.astype(str).to_numpy(), "reference": np.asarray(codes, np.int64)}
    for name, wanted in (extra or {}).items():
        found = _column(frame, wanted, (spec.get(name),) if spec.get(name) else ())
        if found:
            columns[name] = frame[found].to_numpy()
    out = gpd.GeoDataFrame(columns, geometry=frame.geometry.to_numpy(), crs=frame.crs).to_crs(4326)
    return ReferencePoints(out, path, unmapped)


def points_from_params(pp, path: Path, attribute: str | None = None, preset: str | None = None) -> ReferencePoints:
    """`read_points` with the settings of params `assess.points` (a `PointsParams`)."""
    return read_points(path, attribute or pp.attribute, crosswalk=pp.crosswalk, preset=preset or pp.preset, x=pp.x,
                       y=pp.y, crs=pp.crs, id_column=pp.id,
                       extra={"stratum": pp.stratum, "climate_zone": pp.climate_zone, "country": pp.country})
