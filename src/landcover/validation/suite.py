"""The tile expectation suite, defined in code, and the checkpoint that runs it.

The suite runs over one pandas DataFrame with one row per tile (columns from
`metadata.columns`: tile-level facts plus one group of columns per season file and one for the
label). Every expectation is a column-map expectation, so Great Expectations reports the exact
rows (tiles) that break it, with the observed value; `failures_by_tile` turns that into the
per-tile findings the stage writes. Great Expectations decides pass or fail: nothing else does.

The context is ephemeral (nothing written to the repository); the checkpoint's
UpdateDataDocsAction builds the HTML Data Docs into a folder the caller chooses.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from landcover.bands import BANDS, NUM_BANDS, SEASONS
from landcover.config import ValidateParams
from landcover.dataset import ID_PATTERN, LABEL_FILE
from landcover.errors import LandcoverError
from landcover.validation.metadata import LABEL_CODES

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # never phone home

SUITE_NAME = "landcover_tiles"
DOCS_SITE = "landcover_site"
INDEX_COLUMN = "tile_key"
CITIES_PARAMETER = "known_cities"

# reason id -> what it means; ids are stable: reports, metrics and tests use them
REASONS: dict[str, str] = {
    "bad_id": "city_id or tile_id does not match [A-Za-z0-9_-]+",
    "bad_folder": "tile folder cannot be used (symlink or not found)",
    "duplicate_id": "tile id collides with another tile (case-insensitively)",
    "unknown_city": "city_id not listed in cities.csv",
    "missing_file": "a season file (or the label) is missing",
    "unreadable": "file does not open or decode completely (truncated, corrupt, not a GeoTIFF)",
    "band_count": "wrong number of bands (10 per season, 1 for the label)",
    "dtype": "wrong data type (uint16 seasons, uint8 label)",
    "band_names": "band descriptions not B02..B12 in contract order",
    "crs": "CRS missing or not projected",
    "pixel_size": "pixels are not 10 m",
    "grid_mismatch": "season files and label are not on one grid (CRS, transform, shape)",
    "nodata": "nodata fraction of a season above validate.max_nodata_fraction",
    "nonfinite": "NaN or infinite pixel values",
    "reflectance_range": "a band mean outside validate.reflectance_mean_range",
    "constant_band": "a band with std below validate.min_band_std (all-constant)",
    "saturated": "saturated pixel fraction above validate.max_saturated_fraction",
    "label_codes": "label codes outside 0..10",
    "labelled_fraction": "labelled fraction below validate.min_labelled_fraction",
}


@dataclass(frozen=True)
class Failure:
    """One failed expectation for one tile."""

    reason: str
    file: str  # "spring.tif", "label.tif", or "" for tile-level checks
    column: str
    expectation: str
    observed: Any

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "file": self.file, "column": self.column,
                "expectation": self.expectation, "observed": self.observed}

    def __str__(self) -> str:
        where = f"[{self.file}]" if self.file else ""
        return f"{self.reason}{where}: {self.column}={self.observed}"


def build_expectations(v: ValidateParams, seasons: tuple[str, ...] = SEASONS) -> list:
    """The suite's expectations; thresholds come from params.yaml `validate:`."""
    import great_expectations.expectations as gxe

    def meta(reason: str, file: str = "") -> dict[str, str]:
        return {"reason": reason, "file": file, "notes": REASONS[reason]}

    id_regex = ID_PATTERN.pattern
    out = [
        gxe.ExpectColumnValuesToMatchRegex(column="city_id", regex=id_regex, meta=meta("bad_id")),
        gxe.ExpectColumnValuesToMatchRegex(column="tile_id", regex=id_regex, meta=meta("bad_id")),
        gxe.ExpectColumnValuesToBeNull(column="folder_problem", meta=meta("bad_folder")),
        gxe.ExpectColumnValuesToBeUnique(column="tile_key_folded", meta=meta("duplicate_id")),
        gxe.ExpectColumnValuesToBeInSet(
            column="city_id", value_set={"$PARAMETER": CITIES_PARAMETER}, meta=meta("unknown_city")
        ),
        gxe.ExpectColumnValuesToBeNull(column="missing_files", meta=meta("missing_file")),
        gxe.ExpectColumnValuesToBeNull(column="grid_mismatch", meta=meta("grid_mismatch")),
    ]
    lo_px, hi_px = v.pixel_size_m - v.pixel_size_tolerance_m, v.pixel_size_m + v.pixel_size_tolerance_m
    lo_mean, hi_mean = v.reflectance_mean_range
    for s in seasons:
        f = f"{s}.tif"
        out += [
            gxe.ExpectColumnValuesToBeNull(column=f"{s}_read_error", meta=meta("unreadable", f)),
            gxe.ExpectColumnValuesToBeInSet(
                column=f"{s}_band_count", value_set=[NUM_BANDS], meta=meta("band_count", f)),
            gxe.ExpectColumnValuesToBeInSet(
                column=f"{s}_dtype", value_set=["uint16"], meta=meta("dtype", f)),
            gxe.ExpectColumnValuesToBeInSet(
                column=f"{s}_band_names", value_set=[",".join(BANDS)], meta=meta("band_names", f)),
            gxe.ExpectColumnValuesToMatchRegex(
                column=f"{s}_crs", regex=r"^projected ", meta=meta("crs", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_pixel_size_x", min_value=lo_px, max_value=hi_px, meta=meta("pixel_size", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_pixel_size_y", min_value=lo_px, max_value=hi_px, meta=meta("pixel_size", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_nodata_fraction", min_value=0, max_value=v.max_nodata_fraction,
                meta=meta("nodata", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_nonfinite_count", min_value=0, max_value=0, meta=meta("nonfinite", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_band_mean_min", min_value=lo_mean, meta=meta("reflectance_range", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_band_mean_max", max_value=hi_mean, meta=meta("reflectance_range", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_band_std_min", min_value=v.min_band_std, meta=meta("constant_band", f)),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{s}_saturated_fraction_max", max_value=v.max_saturated_fraction,
                meta=meta("saturated", f)),
        ]
    f = LABEL_FILE
    out += [
        gxe.ExpectColumnValuesToBeNull(column="label_read_error", meta=meta("unreadable", f)),
        gxe.ExpectColumnValuesToBeInSet(column="label_band_count", value_set=[1], meta=meta("band_count", f)),
        gxe.ExpectColumnValuesToBeInSet(column="label_dtype", value_set=["uint8"], meta=meta("dtype", f)),
        gxe.ExpectColumnValuesToBeBetween(
            column="label_code_min", min_value=LABEL_CODES[0], max_value=LABEL_CODES[1],
            meta=meta("label_codes", f)),
        gxe.ExpectColumnValuesToBeBetween(
            column="label_code_max", min_value=LABEL_CODES[0], max_value=LABEL_CODES[1],
            meta=meta("label_codes", f)),
        gxe.ExpectColumnValuesToBeBetween(
            column="label_labelled_fraction", min_value=v.min_labelled_fraction, max_value=1,
            meta=meta("labelled_fraction", f)),
    ]
    return out


def build_suite(v: ValidateParams, seasons: tuple[str, ...] = SEASONS):
    import great_expectations as gx

    return gx.ExpectationSuite(name=SUITE_NAME, expectations=build_expectations(v, seasons),
                               meta={"notes": "landcover tile validation (docs/validation.md)"})


def _context(docs_dir: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(Path(docs_dir).resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def run_checkpoint(
    table: pd.DataFrame, known_cities: list[str], v: ValidateParams, docs_dir: Path,
    seasons: tuple[str, ...] = SEASONS,
):
    """Validate the tile table; Data Docs land in `docs_dir`. Returns the CheckpointResult."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    context = _context(docs_dir)
    asset = context.data_sources.add_pandas("landcover").add_dataframe_asset("tile_metadata")
    batch = asset.add_batch_definition_whole_dataframe("all_tiles")
    suite = context.suites.add(build_suite(v, seasons))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="tiles", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="validate_tiles",
        validation_definitions=[definition],
        actions=[UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [INDEX_COLUMN]},
    ))
    return checkpoint.run(
        batch_parameters={"dataframe": table},
        expectation_parameters={CITIES_PARAMETER: sorted(known_cities)},
    )


def _plain(value: Any) -> Any:
    """numpy scalars to Python; NaN/inf to strings so JSON stays standard."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 2**53:  # counts held in float columns (NaN = none)
            return int(value)
        return float(f"{value:.6g}")
    return value


def failures_by_tile(checkpoint_result) -> dict[str, list[Failure]]:
    """{tile_key: [Failure, ...]} from a checkpoint run; raises if an expectation errored."""
    found: dict[str, list[Failure]] = {}
    for validation in checkpoint_result.run_results.values():
        for r in validation.results:
            config = r.expectation_config
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise LandcoverError(
                    f"expectation {config.type} on {config.kwargs.get('column')} could not run: "
                    f"{r.exception_info.get('exception_message')}"
                )
            if r.success:
                continue
            column = config.kwargs["column"]
            rows = r.result.get("unexpected_index_list")
            if rows is None:
                raise LandcoverError(f"expectation {config.type} on {column} failed without row ids")
            for row in rows:
                found.setdefault(row[INDEX_COLUMN], []).append(Failure(
                    reason=config.meta["reason"], file=config.meta.get("file", ""), column=column,
                    expectation=config.type, observed=_plain(row.get(column)),
                ))
    return found
