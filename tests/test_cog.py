"""The project's one COG translation (landcover.maps.cog): layout, overviews by resampling kind, and
what travels with the pixels (colour table, names, nodata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate

from landcover.maps.cog import translate_to_cog, write_uint8_cog

CRS = "EPSG:32631"
TRANSFORM = from_origin(440000, 5420000, 10, 10)


def _raw(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint8", crs=CRS, transform=TRANSFORM, nodata=0, tiled=True, blockxsize=256,
                       blockysize=256) as dst:
        dst.write(data, 1)
    return path


def test_categories_get_mode_overviews_and_keep_their_colours_and_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    codes = np.repeat(np.repeat(rng.choice([3, 9], (128, 128)).astype(np.uint8), 4, 0), 4, 1)  # 512 px
    codes[:40] = 0  # nodata rows
    out = write_uint8_cog(tmp_path / "landcover.tif", codes, CRS, TRANSFORM, "class code",
                          colormap={3: (255, 0, 0, 255), 9: (0, 128, 0, 255)}, tags={"CLASS_9": "Coniferous"})
    assert cog_validate(out, quiet=True)[0]
    with rasterio.open(out) as ds:
        assert np.array_equal(ds.read(1), codes)
        assert ds.overviews(1) == [2, 4]  # down to 128 px
        assert ds.block_shapes[0] == (256, 256) and ds.compression.name == "deflate"
        assert ds.nodata == 0 and ds.crs == CRS and ds.transform == TRANSFORM
        assert ds.colorinterp[0] == ColorInterp.palette and ds.colormap(1)[9][:3] == (0, 128, 0)
        assert ds.tags()["CLASS_9"] == "Coniferous" and ds.descriptions == ("class code",)
        for factor in ds.overviews(1):
            level = ds.read(1, out_shape=(512 // factor, 512 // factor))
            assert set(np.unique(level)) <= {0, 3, 9}  # modes, never an average of codes
    assert not list(tmp_path.glob(".*"))  # the temporary folder is gone


def test_continuous_values_get_average_overviews(tmp_path: Path) -> None:
    values = np.tile(np.array([[10, 30]], np.uint8), (64, 32))  # 64 px: columns alternate 10, 30
    cog = translate_to_cog(_raw(tmp_path / "raw.tif", values), tmp_path / "cog.tif", "average")
    assert cog_validate(cog, quiet=True)[0]
    with rasterio.open(cog) as ds:
        assert ds.overviews(1) == [2]  # at least one level, even below 128 px
        assert np.array_equal(ds.read(1), values)
        assert (ds.read(1, out_shape=(32, 32)) == 20).all()
