"""Typed view of params.yaml: the project's one configuration source.

Every entry point (CLI, DVC stage, Prefect flow) loads the same file through `load_params`, so a
key misspelt in params.yaml or a value of the wrong type fails before any work starts, naming the
key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from landcover.bands import BANDS, SEASONS
from landcover.errors import LandcoverError

T = TypeVar("T")

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")


class _Section(BaseModel):
    """One section of params.yaml. A stage's section names its package (`stage`): that is how the CLI
    finds the stage's command (docs/architecture.md, "How to add a stage")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    stage: ClassVar[str | None] = None


class DataParams(_Section):
    root: Path = Path("data")
    seasons: tuple[str, ...] = ("spring", "summer", "autumn", "winter")


class SynthParams(_Section):
    stage: ClassVar[str] = "landcover.synth"  # the stage package whose command.py the CLI registers
    cities: int = Field(12, ge=1)
    tiles_per_city: int = Field(2, ge=1)
    size: int = Field(256, ge=32)
    seed: int = 42
    unlabelled_fraction: float = Field(0.03, ge=0, lt=1)
    manifest_cities: int = Field(749, ge=1)
    manifest_tiles: int = Field(5401, ge=1)


class ValidateParams(_Section):
    stage: ClassVar[str] = "landcover.validation"  # the stage package whose command.py the CLI registers
    out: Path = Path("reports/validation")
    max_nodata_fraction: float = Field(0.25, ge=0, le=1)
    min_labelled_fraction: float = Field(0.5, ge=0, le=1)
    max_saturated_fraction: float = Field(0.01, ge=0, le=1)
    min_band_std: float = Field(1.0, ge=0)
    reflectance_mean_range: tuple[float, float] = (50.0, 9000.0)
    pixel_size_m: float = 10.0
    pixel_size_tolerance_m: float = 0.01
    max_quarantined_fraction: float = Field(0.2, ge=0, le=1)
    workers: int = Field(2, ge=1)
    dask_address: str | None = None
    require_label: bool = True  # training data: a tile without label.tif is quarantined


class SplitParams(_Section):
    stage: ClassVar[str] = "landcover.split"  # the stage package whose command.py the CLI registers
    out: Path = Path("splits/split.csv")
    stats: Path = Path("metrics/split.json")
    seed: int = 7
    reference_cities: dict[SplitName, int] = {"train": 425, "val": 123, "test": 201}
    tile_fractions: dict[SplitName, float] = {"train": 0.56, "val": 0.14, "test": 0.30}
    search_iterations: int = Field(20000, ge=0)
    # weights of the search objective: tile-share error, climate-zone and class-share gaps
    balance_weights: dict[Literal["tiles", "zones", "classes"], float] = {
        "tiles": 1.0, "zones": 1.0, "classes": 1.0
    }

    @field_validator("balance_weights")
    @classmethod
    def _non_negative_weights(cls, v: dict[str, float]) -> dict[str, float]:
        if any(x < 0 for x in v.values()):
            raise ValueError(f"weights must be >= 0, got {v}")
        return v

    @field_validator("tile_fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(SPLITS):
            raise ValueError(f"needs exactly the keys {SPLITS}, got {sorted(v)}")
        if any(x <= 0 for x in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must be positive and sum to 1, got {v}")
        return v

    @field_validator("reference_cities")
    @classmethod
    def _positive_counts(cls, v: dict[str, int]) -> dict[str, int]:
        if set(v) != set(SPLITS) or any(x <= 0 for x in v.values()):
            raise ValueError(f"needs positive counts for {SPLITS}, got {v}")
        return v


class TrainParams(_Section):
    stage: ClassVar[str] = "landcover.training"  # the stage package whose command.py the CLI registers
    out: Path = Path("models/candidate")
    metrics: Path = Path("metrics/train.json")  # the pipeline's; beside --out when a run names its own
    curves: Path = Path("plots/train_curves.csv")
    input: Literal["store", "geotiff"] = "store"  # the packed store (pack.out) or the tiles themselves
    arch: str = "Unet"
    encoder: str = "resnet18"
    # None (random) | imagenet | a torchgeo weights name (ResNet18_Weights.SENTINEL2_ALL_MOCO, ...) | a state
    # dict's file or URL (docs/training.md, "Pretrained encoders")
    encoder_weights: str | None = None
    freeze_encoder_epochs: int = Field(0, ge=0)  # the encoder frozen for the first N epochs (the head learns first)
    encoder_lr_multiplier: float = Field(1.0, gt=0, le=1)  # the encoder's learning rate: lr x this
    encoder_depth: int = Field(4, ge=3, le=5)
    crop_size: int = Field(64, ge=16)
    crops_per_tile: int = Field(16, ge=1)
    rare_classes: tuple[int, ...] = (1, 3, 4)
    rare_class_crop_share: float = Field(0.5, ge=0, le=1)
    season_dropout: float = Field(0.15, ge=0, le=1)
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(12, ge=1)
    lr: float = Field(0.002, gt=0)
    weight_decay: float = Field(0.0001, ge=0)
    dice_weight: float = Field(0.5, ge=0)
    class_weights: tuple[float, ...] | None = None
    num_workers: int = Field(0, ge=0)
    pin_memory: bool = False
    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    precision_gpu: str = "bf16-mixed"
    precision_cpu: str = "32-true"
    early_stopping_patience: int = Field(5, ge=1)
    seed: int = 1
    val_crops_per_tile: int = Field(4, ge=1)
    log_every_n_steps: int = Field(5, ge=1)

    @field_validator("class_weights")
    @classmethod
    def _ten_weights(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and len(v) != 10:
            raise ValueError(f"needs one weight per class (10), got {len(v)}")
        return v


class InferenceParams(_Section):
    window: int = Field(128, ge=16)
    overlap: int = Field(32, ge=0)
    batch_size: int = Field(8, ge=1)
    tta: bool = False  # D4 test-time augmentation (8 passes per window, probabilities averaged)
    background_nice: int = Field(5, ge=0, le=19)  # priority of the work beside the model (0: the model's)

    @model_validator(mode="after")
    def _overlap_smaller_than_window(self) -> InferenceParams:
        if self.window % 32:
            raise ValueError(f"window ({self.window}) must be a multiple of 32 (the encoder's stride)")
        if self.overlap * 2 >= self.window:
            raise ValueError(f"overlap ({self.overlap}) must be under half the window ({self.window})")
        return self


class MlflowParams(_Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "landcover"
    model_name: str = "landcover-segmentation"


class EvaluateParams(_Section):
    stage: ClassVar[str] = "landcover.evaluation"  # the stage package whose command.py the CLI registers
    out: Path = Path("reports/evaluation")
    metrics: Path = Path("metrics/evaluate.json")
    points: Path | None = None  # reference points: accuracies with confidence intervals beside mIoU (assess.points)


class PromoteParams(_Section):
    stage: ClassVar[str] = "landcover.promotion"  # the stage package whose command.py the CLI registers
    min_miou: float = Field(0.30, ge=0, le=1)
    min_class_iou: float = Field(0.05, ge=0, le=1)
    margin: float = Field(0.005, ge=0)
    max_ece: float | None = Field(None, ge=0, le=1)  # expected calibration error ceiling (test, calibrated)
    out: Path = Path("metrics/promotion.json")  # the decision record


class PredictParams(_Section):
    stage: ClassVar[str] = "landcover.inference"  # the stage package whose command.py the CLI registers
    input: Path = Path("data/tiles")
    out: Path = Path("outputs/fuelmaps")
    model_uri: str | None = None
    workers: int = Field(1, ge=1)  # tiles at once (threads); torch already uses every core per tile
    dask_address: str | None = None
    landscape: bool = False  # also write the FlamMap / ELMFIRE landscape of each tile (needs landscape.dem)
    probabilities: bool = False  # also write probabilities.tif: one uint8 band (percent) per class


def _check_fuel_codes(v: dict[int, int], every_class: bool) -> dict[int, int]:
    from landcover.fuel import FBFM40

    classes = set(range(1, 11))
    missing, extra = sorted(classes - set(v)) if every_class else [], sorted(set(v) - classes)
    if missing or extra:
        raise ValueError(f"needs {'exactly ' if every_class else ''}the land cover codes 1..10 "
                         f"(missing {missing}, unexpected {extra})")
    bad = {k: x for k, x in v.items() if x not in FBFM40}
    if bad:
        raise ValueError(f"not Scott & Burgan FBFM40 codes: {bad} (see landcover.fuel.FBFM40)")
    return v


class CanopyRow(_Section):
    """Canopy fuel of one land cover class, in natural units (tools' units are made on export)."""

    cc: float = Field(0.0, ge=0, le=100)  # canopy cover, %
    ch: float = Field(0.0, ge=0, le=100)  # canopy height, m
    cbh: float = Field(0.0, ge=0, le=100)  # canopy base height, m
    cbd: float = Field(0.0, ge=0, le=2)  # canopy bulk density, kg/m3

    @model_validator(mode="after")
    def _base_below_top(self) -> CanopyRow:
        if self.cbh > self.ch:
            raise ValueError(f"canopy base height ({self.cbh} m) above canopy height ({self.ch} m)")
        return self


class FuelParams(_Section):
    """The crosswalk table: a default row (every class) and per-climate-zone rows naming the classes
    whose fuel model differs there; canopy attributes the same way (classes not named: no canopy)."""

    crosswalk_version: str = "fbfm40-eu-1.0"
    crosswalk: dict[int, int]
    zones: dict[str, dict[int, int]] = {}
    canopy: dict[int, CanopyRow] = {}
    canopy_zones: dict[str, dict[int, CanopyRow]] = {}

    @field_validator("crosswalk")
    @classmethod
    def _covers_every_class(cls, v: dict[int, int]) -> dict[int, int]:
        return _check_fuel_codes(v, every_class=True)

    @field_validator("zones")
    @classmethod
    def _zone_rows(cls, v: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
        _known_zones(v)
        for row in v.values():
            _check_fuel_codes(row, every_class=False)
        return v

    @field_validator("canopy_zones")
    @classmethod
    def _canopy_zone_rows(cls, v: dict) -> dict:
        return _known_zones(v)

    @field_validator("canopy")
    @classmethod
    def _canopy_classes(cls, v: dict) -> dict:
        extra = sorted(set(v) - set(range(1, 11)))
        if extra:
            raise ValueError(f"land cover codes are 1..10, got {extra}")
        return v

    def for_zone(self, zone: str | None) -> dict[int, int]:
        """The crosswalk row of a climate zone: the default row with the zone's classes replaced."""
        return {**self.crosswalk, **self.zones.get(zone or "", {})}

    def canopy_for(self, zone: str | None) -> dict[int, CanopyRow]:
        return {**self.canopy, **self.canopy_zones.get(zone or "", {})}


def _known_zones(v: dict) -> dict:
    from landcover.dataset import CLIMATE_ZONES

    unknown = sorted(set(v) - set(CLIMATE_ZONES))
    if unknown:
        raise ValueError(f"unknown climate zone(s) {unknown}; known: {', '.join(CLIMATE_ZONES)}")
    return v


class ChangeParams(_Section):
    """`landcover change`: transitions between two map versions."""
    stage: ClassVar[str] = "landcover.change"  # the stage package whose command.py the CLI registers

    min_confidence: int = Field(70, ge=0, le=100)  # both maps at least this sure (percent) for a change to count
    out: Path = Path("outputs/change")


class PackParams(_Section):
    """`landcover pack`: the training store random crops are read from (docs/training-store.md)."""
    stage: ClassVar[str] = "landcover.pack"  # the stage package whose command.py the CLI registers

    out: Path = Path("packed/store.zarr")
    metrics: Path = Path("metrics/pack.json")  # the pipeline's; beside --out when a run names its own
    chunk: int = Field(128, ge=16)
    compression: Literal["none", "lz4", "zstd"] = "none"
    workers: int = Field(2, ge=1)


class AreasParams(_Section):
    """`landcover areas`: one seamless map per city from batch inference's tiles."""
    stage: ClassVar[str] = "landcover.areas"  # the stage package whose command.py the CLI registers

    out: Path = Path("outputs/areas")


class LandscapeParams(_Section):
    """`landcover landscape`: FlamMap / ELMFIRE inputs from fuel maps and a DEM (docs/landscape.md)."""
    stage: ClassVar[str] = "landcover.landscape"  # the stage package whose command.py the CLI registers

    out: Path = Path("outputs/landscape")
    dem: str | None = None  # path or URL of a DEM in any CRS (GDAL reads it)
    # per attribute (cc %, ch m, cbh m, cbd kg/m3): a raster replacing the table on forest pixels
    canopy_rasters: dict[Literal["cc", "ch", "cbh", "cbd"], str] = {}
    lcp: bool = True  # landscape.lcp (+ .prj) for FlamMap / FARSITE
    elmfire: bool = True  # elmfire/*.tif for ELMFIRE
    workers: int = Field(2, ge=1)


S2_ASSETS: tuple[str, ...] = (*BANDS, "SCL")  # the asset roles a mosaic reads: ten bands and the SCL


class StacPreset(_Section):
    """Where a catalogue keeps Sentinel-2 L2A: API root, collection, and its asset key per band."""

    url: str | None = None
    collection: str = "sentinel-2-l2a"
    assets: dict[str, str]  # B02..B12 and SCL -> the catalogue's asset key
    sign: Literal["planetary-computer"] | None = None  # hrefs need signing before they can be read
    # s3:// hrefs served by this S3 endpoint (path-style; keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
    s3_endpoint: str | None = None

    @field_validator("assets")
    @classmethod
    def _every_band(cls, v: dict[str, str]) -> dict[str, str]:
        missing, extra = sorted(set(S2_ASSETS) - set(v)), sorted(set(v) - set(S2_ASSETS))
        if missing or extra:
            raise ValueError(f"needs exactly {', '.join(S2_ASSETS)} (missing {missing}, unexpected {extra})")
        return v


class PlausibilityParams(_Section):
    """Per-scene check after the BOA offset: clear land pixels should not be mostly <= 0 (BRIEF 8)."""

    min_land_pixels: int = Field(500, ge=1)  # fewer clear land pixels on the tile: no verdict
    max_nonpositive_fraction: float = Field(0.5, gt=0, le=1)  # share of clear land pixels with B02 <= 0
    on_fail: Literal["drop", "fix"] = "drop"  # drop the scene, or keep it without the offset if that is plausible


class MosaicParams(_Section):
    stage: ClassVar[str] = "landcover.mosaic"  # the stage package whose command.py the CLI registers
    source: str = "earth-search"  # preset name, STAC API URL, local STAC catalog/item collection, SAFE folder
    preset: str | None = None  # asset preset for a STAC URL or local catalog (default: detected)
    presets: dict[str, StacPreset] = {}
    year: int | None = Field(None, ge=2015)
    grid: int = Field(1, ge=1)  # tiles per side around each city of --cities
    size: int = Field(2048, ge=16)  # tile side in pixels (10 m)
    # month windows per season, inclusive; a start month after the end month starts the year before
    seasons: dict[str, tuple[int, int]] = {"spring": (3, 5), "summer": (6, 8), "autumn": (9, 11),
                                           "winter": (12, 2)}
    max_cloud_cover: float = Field(70.0, ge=0, le=100)  # scene-level eo:cloud_cover, percent
    mask_scl: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
    mask_snow: bool = False  # snow (SCL 11) is real surface in winter
    # grow masked cloud and shadow (SCL 3, 8, 9, 10) by this many metres (at 20 m: 20 -> 1 pixel, 40 -> 2)
    mask_buffer_m: float = Field(0.0, ge=0, le=1000)
    quantile: float = Field(0.5, ge=0, le=1)  # 0.5: the median of the clear observations
    # 20 m bands onto the 10 m grid; bilinear never reaches across a masked 20 m pixel (mosaic/resample.py)
    resampling_20m: Literal["bilinear", "nearest"] = "bilinear"
    offset_when_unknown: int | None = None  # BOA offset (DN) for scenes whose metadata states none
    plausibility: PlausibilityParams = PlausibilityParams()
    # every scene's observations of a strip of rows fit this (an exact quantile holds them all at once)
    memory_mb: int = Field(512, ge=32)
    read_threads: int = Field(32, ge=1)  # files read at once (HTTP: range requests in flight)
    retries: int = Field(2, ge=0)  # reruns of a tile's season after a read failure
    retry_delay_s: float = Field(5.0, ge=0)
    skip_unreadable_scenes: bool = False  # false: a scene unreadable after the retries fails its tile
    workers: int | None = Field(None, ge=1)  # threads compositing strips of a tile (default: every core)
    dask_address: str | None = None  # e.g. tcp://scheduler:8786: tiles fan out over the cluster

    @field_validator("seasons")
    @classmethod
    def _four_seasons(cls, v: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        if set(v) != set(SEASONS):
            raise ValueError(f"needs exactly the seasons {', '.join(SEASONS)}, got {sorted(v)}")
        bad = {k: m for k, m in v.items() if not all(1 <= x <= 12 for x in m)}
        if bad:
            raise ValueError(f"months must be 1..12, got {bad}")
        return v

    @field_validator("mask_scl")
    @classmethod
    def _scl_codes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= c <= 11 for c in v):
            raise ValueError(f"SCL codes are 0..11, got {list(v)}")
        return v

    def masked_classes(self) -> tuple[int, ...]:
        """The SCL classes that are never ground: mask_scl, and snow when mask_snow."""
        return tuple(sorted({*self.mask_scl, *((11,) if self.mask_snow else ())}))


class MapRates(_Section):
    """What the plan multiplies by (core-seconds and bytes), from `make bench` (docs/regions.md)."""

    mosaic_s_per_mpx: float = Field(0.386, ge=0)  # per output Mpx and season, plus ...
    mosaic_s_per_mpx_per_scene: float = Field(0.0722, ge=0)  # ... this per scene of the season (figure 7)
    predict_s_per_mpx: float = Field(33.0, ge=0)  # core-seconds, default model (figure 2: 69 s x 2 cores / 4.19 Mpx)
    output_bytes_per_px: float = Field(1.0, ge=0)  # land cover, fuel and confidence COGs together
    work_bytes_per_px: float = Field(48.0, ge=0)  # per tile pixel: composites and UTM maps kept for resuming


class MapParams(_Section):
    stage: ClassVar[str] = "landcover.region"  # the region job: `landcover map`
    out: Path = Path("outputs/region")
    name: str = "region"  # the region's id: tile folders are <name>_<zone><N|S>/<tile>
    tile_size: int = Field(2048, ge=16)  # px, on the 10 m grid of each UTM zone
    cell_km: int = Field(100, ge=1)  # the EEA grid's cells the region's maps are cut into
    # land cover on the EEA grid: argmax of bilinearly resampled class probabilities, or nearest
    resampling: Literal["probabilities", "nearest"] = "probabilities"
    block: int = Field(2048, ge=64)  # px: the assembly works block by block (flat memory)
    climate_zone: str | None = None  # one zone for the whole region, when no zones layer is given
    climate_zone_attribute: str = "zone"  # --climate-zones: the attribute holding the zone name
    zones_attribute: str = "name"  # --zones: the attribute naming each polygon of the statistics
    workers: int = Field(1, ge=1)  # tiles at once (each uses every core)
    dask_address: str | None = None  # tiles fan out over the cluster (mosaic and predict)
    rates: MapRates = MapRates()

    @field_validator("climate_zone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        from landcover.dataset import CLIMATE_ZONES

        if v is not None and v not in CLIMATE_ZONES:
            raise ValueError(f"unknown climate zone {v!r} (one of {', '.join(CLIMATE_ZONES)})")
        return v


class ViewParams(_Section):
    stage: ClassVar[str] = "landcover.viewer"  # the stage package whose command.py the CLI registers
    host: str = "127.0.0.1"  # local only: the viewer has no authentication
    port: int = Field(8765, ge=1, le=65535)


class PointsParams(_Section):
    """Where reference points keep what an assessment reads (docs/accuracy.md)."""

    attribute: str | None = None  # the reference class attribute (default: the preset's, or land cover codes)
    preset: Literal["lucas"] | None = None  # LUCAS as Eurostat publishes it (LC1 crosswalked)
    crosswalk: dict[str, int] | None = None  # {reference value: class code 0..10}; 0 = not comparable
    x: str | None = None  # CSV coordinate columns (default: x/lon/longitude/th_long, y/lat/latitude/th_lat)
    y: str | None = None
    crs: str | None = None  # of a CSV's coordinates (default EPSG:4326, or the preset's)
    id: str | None = None  # the point id column (default point_id / id, or a running number)
    stratum: str = "stratum"  # the stratum of a stratified sample (`landcover assess --design` writes it)
    climate_zone: str = "climate_zone"  # breakdowns, when the points carry them
    country: str = "country"
    attribute_before: str | None = None  # change maps: the reference class before and after
    attribute_after: str | None = None


class AssessDesignParams(_Section):
    target_se: float = Field(0.01, gt=0, lt=1)  # standard error of the overall accuracy aimed at
    expected_users_accuracy: float | dict[int | str, float] = 0.8  # per class code, or one for all ("default")
    min_per_stratum: int = Field(50, ge=0)  # rare classes: the good-practice guide's 50 to 100
    seed: int = 0


class AssessParams(_Section):
    stage: ClassVar[str] = "landcover.assessment"  # the stage package whose command.py the CLI registers
    out: Path = Path("reports/assessment")
    points: PointsParams = PointsParams()
    design: AssessDesignParams = AssessDesignParams()
    finite_population_correction: bool = False  # off, as the published figures: maps have millions of pixels


class LabelsParams(_Section):
    stage: ClassVar[str] = "landcover.labels"  # the stage package whose command.py the CLI registers
    attribute: str | None = None  # vector attribute holding the class value
    preset: str | None = None  # crosswalk preset (worldcover, clc, clc-raster); see docs/real-data.md
    # reference value -> class code 0..10; values not listed become 0 (unlabelled) and are counted
    crosswalk: dict[str | int, int] | None = None
    lines_all_touched: bool = True  # line features (roads) burn every pixel they touch

    @field_validator("crosswalk")
    @classmethod
    def _class_codes(cls, v: dict[str | int, int] | None) -> dict[str | int, int] | None:
        bad = {k: c for k, c in (v or {}).items() if not 0 <= c <= 10}
        if bad:
            raise ValueError(f"class codes are 0..10, got {bad}")
        return v


class Params(_Section):
    data: DataParams = DataParams()
    synth: SynthParams = SynthParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams = SplitParams()
    pack: PackParams = PackParams()
    train: TrainParams = TrainParams()
    inference: InferenceParams = InferenceParams()
    mlflow: MlflowParams = MlflowParams()
    evaluate: EvaluateParams = EvaluateParams()
    promote: PromoteParams = PromoteParams()
    predict: PredictParams = PredictParams()
    fuel: FuelParams
    landscape: LandscapeParams = LandscapeParams()
    areas: AreasParams = AreasParams()
    change: ChangeParams = ChangeParams()
    mosaic: MosaicParams = MosaicParams()
    labels: LabelsParams = LabelsParams()
    map: MapParams = MapParams()
    assess: AssessParams = AssessParams()
    view: ViewParams = ViewParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def validation(self) -> ValidateParams:
        return self.validate_

    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI wins over params.yaml so servers can be swapped without edits."""
        return os.environ.get("MLFLOW_TRACKING_URI") or self.mlflow.tracking_uri


class ConfigError(LandcoverError, ValueError):
    """A params file that cannot work; the message names the file and the key."""


DEFAULT_PARAMS = Path("params.yaml")


def stage_packages() -> dict[str, str]:
    """params section -> stage package, in params order: the CLI's registry of stages."""
    found = {}
    for name, info in Params.model_fields.items():
        package = getattr(info.annotation, "stage", None)
        if package:
            found[info.alias or name] = package
    return found


def arg_or(value: T | None, default: T) -> T:
    """A command-line option when it was given (0, False and "" included), else its params default:
    the one way every command falls back to params.yaml."""
    return default if value is None else value


def load_params(path: Path | str = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                raise ConfigError(f"{path}: cannot set {dotted}: {'.'.join(parents[: depth + 1])} is not a section")
        node[leaf] = value
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).replace('validate_', 'validate')}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
