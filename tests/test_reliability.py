"""Bad inputs, unsafe artifacts and raw-data integrity across stages (docs/reliability.md)."""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from conftest import REPO, TINY_TRAIN
from landcover.config import load_params
from landcover.dataset import DataContractError, discover_tiles, read_cities
from landcover.errors import LandcoverError
from landcover.inference.stage import run_predict
from landcover.model.bundle import ModelBundle
from landcover.model.network import build_network
from landcover.model.normalization import compute_norm_stats
from landcover.splitfile import read_split
from landcover.training.data import index_tiles


# ----------------------------------------------------------------- the bad-input corpus
def _rewrite(path: Path, fn) -> None:
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
        descriptions = src.descriptions
    profile, data = fn(profile, data)
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if len(descriptions) == data.shape[0]:
            dst.descriptions = descriptions


def truncated(tile):
    p = tile.season_path("winter")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def zero_bytes(tile):
    p = tile.season_path("spring")
    p.write_bytes(b"")
    return p


def text_file(tile):
    p = tile.season_path("summer")
    p.write_text("this is not a GeoTIFF\n")
    return p


def nine_bands(tile):
    p = tile.season_path("autumn")
    _rewrite(p, lambda prof, d: ({**prof, "count": 9}, d[:9]))
    return p


def float_nan(tile):
    p = tile.season_path("summer")

    def fn(prof, d):
        f = d.astype(np.float32)
        f[0, 0, 0], f[1, 1, 1] = np.nan, np.inf
        return {**prof, "dtype": "float32", "nodata": None, "predictor": 1}, f

    _rewrite(p, fn)
    return p


def other_crs(tile):
    p = tile.season_path("spring")
    _rewrite(p, lambda prof, d: ({**prof, "crs": "EPSG:32633" if prof["crs"].to_epsg() != 32633 else "EPSG:32632"}, d))
    return p


def shifted(tile):
    p = tile.season_path("winter")
    _rewrite(p, lambda prof, d: ({**prof, "transform": prof["transform"] * Affine.translation(3, 0)}, d))
    return p


def missing_season(tile):
    p = tile.season_path("autumn")
    p.unlink()
    return p


def big_label(tile):
    p = tile.label_path

    def fn(prof, d):
        bigger = {**prof, "width": prof["width"] + 16, "height": prof["height"] + 16}
        return bigger, np.pad(d, ((0, 0), (0, 16), (0, 16)))

    _rewrite(p, fn)
    return p


CORPUS = [truncated, zero_bytes, text_file, nine_bands, float_nan, other_crs, shifted, missing_season]


@pytest.mark.parametrize("defect", CORPUS + [big_label], ids=lambda f: f.__name__)
def test_training_data_loading_names_the_file(dataset_copy: Path, defect) -> None:
    tile = discover_tiles(dataset_copy)[0][0]
    bad = defect(tile)
    with pytest.raises((DataContractError, LandcoverError)) as info:
        from landcover.training.data import ValCrops
        from landcover.training.sources import GeoTiffSource

        source = GeoTiffSource([tile])
        infos = index_tiles(source, 32, (1,))
        compute_norm_stats([tile])
        ds = ValCrops(infos, source, 32, 4)
        for i in range(len(ds)):
            ds[i]
    assert bad.name in str(info.value), str(info.value)


@pytest.mark.parametrize("defect", CORPUS + [big_label], ids=lambda f: f.__name__)
def test_packing_names_the_file_and_keeps_the_store(dataset_copy: Path, tmp_path: Path, defect) -> None:
    from landcover.pack.stage import run_pack
    from landcover.split.stage import run_split

    p = load_params(REPO / "params.yaml")
    split = tmp_path / "split.csv"
    run_split(p, dataset_copy, split, tmp_path / "split.json")
    out = tmp_path / "store.zarr"
    run_pack(p, dataset_copy, split, out)
    before = sorted(str(f) for f in out.rglob("*"))
    tile = read_split(split, dataset_copy, "train")[0]
    bad = defect(tile)
    with pytest.raises((DataContractError, LandcoverError)) as info:
        run_pack(p, dataset_copy, split, out)
    assert bad.name in str(info.value), str(info.value)
    assert sorted(str(f) for f in out.rglob("*")) == before  # the last good store is untouched


@pytest.mark.parametrize("defect", CORPUS, ids=lambda f: f.__name__)
def test_batch_inference_reports_the_tile_and_finishes_the_others(dataset_copy, tiny_model, tmp_path, defect):
    tiles = discover_tiles(dataset_copy)[0]
    bad_tile = tiles[3]
    bad = defect(bad_tile)
    keep = {t.key for t in tiles[:5]}
    for t in tiles:  # a smaller input: five tiles
        if t.key not in keep:
            shutil.rmtree(t.directory)
    result = run_predict(load_params(REPO / "params.yaml", TINY_TRAIN), dataset_copy, tmp_path / "out",
                         tiny_model.model_uri)
    assert set(result.failed) == {bad_tile.key}
    assert bad.name in result.failed[bad_tile.key]
    assert len(result.written) == 4


def test_cities_csv_missing_column_and_unlisted_city(dataset_copy: Path) -> None:
    path = dataset_copy / "cities.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:-1]) for line in lines) + "\n")
    with pytest.raises(DataContractError, match="missing column"):
        read_cities(path)


def test_tile_ids_with_dots_or_slashes_are_never_used_as_paths(dataset_copy: Path) -> None:
    from landcover.dataset import tile_ref

    (dataset_copy / "tiles" / "ES001" / "..evil").mkdir(parents=True)
    tiles, bad = discover_tiles(dataset_copy)
    assert all(".." not in t.tile_id for t in tiles)
    assert any("..evil" in b.path for b in bad)
    for tid in ("../x", "a/b", "..", ""):
        with pytest.raises(DataContractError):
            tile_ref(dataset_copy, "ES001", tid)


# ----------------------------------------------------------------- unsafe artifacts
class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_model_weights_never_unpickle(tmp_path: Path, tiny_model) -> None:
    """A pickle posing as weights is refused without running its code."""
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_model.out_dir / "bundle", bundle_dir)
    marker = tmp_path / "pwned"
    (bundle_dir / "weights.safetensors").write_bytes(pickle.dumps(_Boom(str(marker))))
    from safetensors import SafetensorError

    with pytest.raises(SafetensorError):
        ModelBundle.load(bundle_dir)
    assert not marker.exists()

    weights = tmp_path / "encoder.pth"
    torch.save({"x": _Boom(str(marker))}, weights)
    with pytest.raises(pickle.UnpicklingError):
        build_network("Unet", "resnet18", 3, str(weights))
    assert not marker.exists()


def test_servers_bind_to_localhost_by_default() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "HOST ?= 127.0.0.1" in makefile
    assert 'HOST="${HOST:-127.0.0.1}"' in (REPO / "scripts" / "serve.sh").read_text()


def test_no_credentials_in_the_repository() -> None:
    import re
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    pattern = re.compile(r"(AKIA[0-9A-Z]{16}|aws_secret_access_key\s*=|password\s*[:=]\s*['\"][^'\"]{4,}|"
                         r"postgresql://[^:\s]+:[^@\s]+@)", re.IGNORECASE)
    this_file = Path(__file__).relative_to(REPO).as_posix()  # holds the patterns themselves
    hits = [f for f in files if f.endswith((".py", ".yaml", ".yml", ".toml", ".cfg", ".md", ".sh", ".txt"))
            and f != this_file
            and pattern.search((REPO / f).read_text(errors="ignore"))]
    assert not hits, hits


# ----------------------------------------------------------------- raw data integrity
def test_raw_data_unchanged_by_the_whole_pipeline(dataset_copy, mlflow_store, tmp_path, monkeypatch) -> None:
    from landcover.evaluation.stage import run_evaluation
    from landcover.split.stage import run_split
    from landcover.training.stage import run_train
    from landcover.validation.stage import run_validation

    def checksums() -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(dataset_copy.rglob("*"))
                if p.is_file()}

    before = checksums()
    p = load_params(REPO / "params.yaml", TINY_TRAIN)
    monkeypatch.chdir(tmp_path)
    run_validation(p, dataset_copy, tmp_path / "val")
    run_split(p, dataset_copy, tmp_path / "split.csv", tmp_path / "split.json", tmp_path / "val" / "valid_tiles.csv")
    from landcover.pack.stage import run_pack

    run_pack(p, dataset_copy, tmp_path / "split.csv", tmp_path / "store.zarr")
    trained = run_train(p, dataset_copy, tmp_path / "split.csv", tmp_path / "model", fast_dev_run=True,
                        store=tmp_path / "store.zarr")
    run_evaluation(p, dataset_copy, tmp_path / "split.csv", trained.model_uri, tmp_path / "eval",
                   missing_seasons=False)
    run_predict(p, dataset_copy, tmp_path / "out", trained.model_uri)
    assert checksums() == before
    assert not [p for p in dataset_copy.rglob("*.aux.xml")], "side files written into the raw data"
