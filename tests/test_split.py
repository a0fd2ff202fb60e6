"""Split stage (issue 4): whole cities, reference counts, stratified, deterministic, safe."""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from landcover.cli import main
from landcover.config import SPLITS
from landcover.dataset import discover_tiles, read_label, tile_ref
from landcover.split.errors import SplitError
from landcover.split.inputs import label_class_pixels, load_inputs
from landcover.split.quotas import city_counts, zone_quotas
from landcover.split.stage import SPLIT_COLUMNS, run_split
from landcover.synth.manifest import write_manifest

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
REFERENCE = {"train": 425, "val": 123, "test": 201}
REFERENCE_TILES = {"train": 3025, "val": 756, "test": 1620}

# Bounds on the balance measures at full scale (largest |split share - whole share|); measured
# values are about ten times smaller (docs/split.md).
MAX_ZONE_TILE_DIFF = 0.005
MAX_CLASS_DIFF = 0.003
MAX_TILE_SHARE_ERROR = 0.001


@pytest.fixture(scope="module")
def full_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full") / "data"
    assert write_manifest(root, 749, 5401, 42) == (749, 5401)
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def check_grouped(rows: list[dict[str, str]]) -> dict[str, str]:
    """Every tile once, every city in exactly one split; returns city -> split."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        assert r["split"] in SPLITS
        splits_of[r["city_id"]].add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values()), "a city appears in two splits"
    keys = [(r["city_id"], r["tile_id"]) for r in rows]
    assert len(keys) == len(set(keys)) and keys == sorted(keys)
    return {c: next(iter(s)) for c, s in splits_of.items()}


# ------------------------------------------------------------------ counts
def test_city_counts_reference_and_small() -> None:
    assert city_counts(749, REFERENCE) == REFERENCE
    assert city_counts(3, REFERENCE) == {"train": 1, "val": 1, "test": 1}
    assert city_counts(6, REFERENCE) == {"train": 3, "val": 1, "test": 2}
    for n in range(3, 800):
        c = city_counts(n, REFERENCE)
        assert sum(c.values()) == n and min(c.values()) >= 1
        exact = {k: n * v / 749 for k, v in REFERENCE.items()}
        if n >= 10:  # largest remainder: each count within 1 of its exact share
            assert all(abs(c[k] - exact[k]) < 1 for k in SPLITS)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_city_counts_too_few_cities(n: int) -> None:
    with pytest.raises(SplitError, match="cannot fill 3 splits"):
        city_counts(n, REFERENCE)


def test_zone_quotas_margins_exact_and_within_rounding() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        zones = rng.integers(1, 60, rng.integers(1, 7))
        splits = np.array(list(city_counts(int(zones.sum()) + 3, REFERENCE).values()))
        zones[0] += 3
        q = zone_quotas(zones, splits)
        assert (q.sum(axis=1) == zones).all() and (q.sum(axis=0) == splits).all()
        exact = np.outer(zones, splits) / zones.sum()
        assert (np.abs(q - exact) < 1).all()


# ------------------------------------------------------------------ full scale
def test_full_manifest_reference_counts_balanced_and_fast(
    full_manifest: Path, tmp_path: Path, params
) -> None:
    start = time.perf_counter()
    result = run_split(params, full_manifest, tmp_path / "split.csv", tmp_path / "split.json")
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"full-scale split took {elapsed:.1f} s"
    stats = json.loads((tmp_path / "split.json").read_text())
    assert stats == json.loads(json.dumps(result.stats))
    for name in SPLITS:
        assert stats[name]["cities"] == REFERENCE[name]
        assert abs(stats[name]["tiles"] - REFERENCE_TILES[name]) <= 0.01 * REFERENCE_TILES[name]
        assert set(stats[name]["zones"]) == set(stats["whole"]["zones"])
        assert len(stats[name]["classes"]) == 10
    assert stats["cities"] == 749 and stats["tiles"] == 5401 and stats["seed"] == params.split.seed
    assert stats["class_source"] == "class_mix.csv"
    assert stats["max_tile_share_error"] < MAX_TILE_SHARE_ERROR
    assert stats["max_zone_share_diff"] < MAX_ZONE_TILE_DIFF
    assert stats["max_zone_city_share_diff"] <= 1 / 123 + 1e-6  # quota rounding bound
    assert stats["max_class_share_diff"] < MAX_CLASS_DIFF
    rows = read_rows(tmp_path / "split.csv")
    assert len(rows) == 5401
    city_split = check_grouped(rows)
    assert len(city_split) == 749


@pytest.mark.parametrize("manifest_seed,split_seed", [(5, 1), (42, 2), (42, 3), (99, 11)])
def test_balance_holds_for_other_seeds(
    tmp_path: Path, params, manifest_seed: int, split_seed: int
) -> None:
    """Balance comes from the construction and search, not from one lucky seed."""
    root = tmp_path / "data"
    write_manifest(root, 749, 5401, manifest_seed)
    p = params.model_copy(update={"split": params.split.model_copy(update={"seed": split_seed})})
    stats = run_split(p, root, tmp_path / "s.csv", tmp_path / "s.json").stats
    assert [stats[s]["cities"] for s in SPLITS] == [425, 123, 201]
    assert stats["max_tile_count_rel_error"] < 0.01
    assert stats["max_zone_share_diff"] < MAX_ZONE_TILE_DIFF
    assert stats["max_class_share_diff"] < MAX_CLASS_DIFF


def test_zone_city_counts_stay_within_quota_rounding(
    full_manifest: Path, tmp_path: Path, params
) -> None:
    inputs = load_inputs(full_manifest)
    result = run_split(params, full_manifest, tmp_path / "s.csv", tmp_path / "s.json")
    split_of = result.city_splits()
    table = inputs.table
    zone_sizes = np.bincount(table.zones)
    sizes = np.array([REFERENCE[s] for s in SPLITS])
    cells = np.zeros((len(table.zone_names), 3), dtype=int)
    for c, z in zip(table.city_ids, table.zones, strict=True):
        cells[z, SPLITS.index(split_of[c])] += 1
    exact = np.outer(zone_sizes, sizes) / 749
    assert (np.abs(cells - exact) < 1).all()


def test_deterministic_and_seed_changes_assignment(full_manifest: Path, tmp_path: Path) -> None:
    def cli(name: str, *extra: str) -> tuple[bytes, bytes]:
        out, stats = tmp_path / f"{name}.csv", tmp_path / f"{name}.json"
        args = [
            "--params",
            str(PARAMS),
            *extra,
            "split",
            "--data",
            str(full_manifest),
            "--out",
            str(out),
            "--stats",
            str(stats),
        ]
        assert main(args) == 0
        return out.read_bytes(), stats.read_bytes()

    a, b = cli("a"), cli("b")
    assert a == b
    c = cli("c", "--set", "split.seed=8")  # changing the seed in params
    assert c[0] != a[0]
    rows_a, rows_c = read_rows(tmp_path / "a.csv"), read_rows(tmp_path / "c.csv")
    split_a, split_c = check_grouped(rows_a), check_grouped(rows_c)
    assert sum(split_a[k] != split_c[k] for k in split_a) > 50
    stats_c = json.loads(c[1])
    assert stats_c["seed"] == 8 and [stats_c[s]["cities"] for s in SPLITS] == [425, 123, 201]


# ------------------------------------------------------------------ small data, CLI, safety
def test_cli_tiny_dataset_columns_and_one_city_each(
    tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    out, stats = tmp_path / "split.csv", tmp_path / "split.json"
    code = main(
        [
            "--params",
            str(PARAMS),
            "split",
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "--stats",
            str(stats),
            "--seed",
            "3",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert (
        "train" in printed and "val" in printed and "test" in printed and "climate zones" in printed
    )
    assert out.read_text().splitlines()[0] == ",".join(SPLIT_COLUMNS)
    rows = read_rows(out)
    tiles, _ = discover_tiles(tiny_dataset)
    assert sorted((r["city_id"], r["tile_id"]) for r in rows) == sorted(
        (t.city_id, t.tile_id) for t in tiles
    )
    city_split = check_grouped(rows)
    assert set(city_split.values()) == set(SPLITS)
    s = json.loads(stats.read_text())
    assert [s[k]["cities"] for k in SPLITS] == [3, 1, 2]
    assert s["class_source"] == "label.tif" and s["seed"] == 3
    whole = s["whole"]["classes"]
    assert abs(sum(whole.values()) - 1) < 1e-4


def test_label_class_pixels_streams_exact_counts(tiny_dataset: Path) -> None:
    tile = tile_ref(tiny_dataset, "FR001", "t000_p0_p0")
    label = read_label(tile)
    expected = np.bincount(label.ravel(), minlength=11)[1:11]
    assert (label_class_pixels(tile, rows_per_read=8) == expected).all()
    assert (label_class_pixels(tile) == expected).all()


def test_quarantined_tiles_never_split(tiny_dataset: Path, tmp_path: Path) -> None:
    tiles, _ = discover_tiles(tiny_dataset)
    keys = sorted((t.city_id, t.tile_id) for t in tiles)
    quarantined = {keys[0], keys[1], keys[5]}  # every tile of the first city and one more
    valid = tmp_path / "valid_tiles.csv"
    valid.write_text(
        "city_id,tile_id\n" + "".join(f"{c},{t}\n" for c, t in keys if (c, t) not in quarantined)
    )
    out = tmp_path / "split.csv"
    code = main(
        [
            "--params",
            str(PARAMS),
            "split",
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "--stats",
            str(tmp_path / "s.json"),
            "--valid",
            str(valid),
        ]
    )
    assert code == 0
    rows = read_rows(out)
    got = {(r["city_id"], r["tile_id"]) for r in rows}
    assert got == set(keys) - quarantined
    assert keys[0][0] not in {r["city_id"] for r in rows}
    city_split = check_grouped(rows)
    assert set(city_split.values()) == set(SPLITS)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert (
        stats["excluded_tiles"] == 3 and stats["cities"] == 5 and stats["cities_without_tiles"] == 1
    )


def test_valid_list_naming_unknown_tile_is_an_error(
    tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    valid = tmp_path / "valid_tiles.csv"
    valid.write_text("city_id,tile_id\nFR001,t000_p0_p0\nFR001,nosuchtile\n")
    code = main(
        [
            "--params",
            str(PARAMS),
            "split",
            "--data",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "s.csv"),
            "--stats",
            str(tmp_path / "s.json"),
            "--valid",
            str(valid),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "FR001/nosuchtile" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()


def test_two_cities_is_a_clear_error(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    write_manifest(root, 2, 6, 1)
    out = tmp_path / "split.csv"
    code = main(
        [
            "--params",
            str(PARAMS),
            "split",
            "--data",
            str(root),
            "--out",
            str(out),
            "--stats",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert "2 cities" in err and "cannot fill 3 splits" in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "fractions",
    [
        "{train: 0.5, val: 0.2, test: 0.2}",
        "{train: 0.7, val: 0.3}",
        "{train: 1.2, val: -0.1, test: -0.1}",
    ],
)
def test_bad_fractions_are_a_clear_error(tmp_path: Path, capsys, fractions: str) -> None:
    root = tmp_path / "data"
    write_manifest(root, 10, 30, 1)
    code = main(
        [
            "--params",
            str(PARAMS),
            "--set",
            f"split.tile_fractions={fractions}",
            "split",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "s.csv"),
            "--stats",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "split.tile_fractions" in err
    assert not (tmp_path / "s.csv").exists()


def test_small_manifests_keep_proportions(tmp_path: Path, params) -> None:
    for n, t in [(3, 3), (4, 10), (12, 24), (60, 400)]:
        root = tmp_path / f"m{n}"
        write_manifest(root, n, t, 1)
        result = run_split(params, root, root / "s.csv", root / "s.json")
        assert [result.stats[s]["cities"] for s in SPLITS] == list(
            city_counts(n, REFERENCE).values()
        )
        check_grouped(read_rows(root / "s.csv"))
