"""Vector files as users hold them (GeoPackage, Shapefile, GeoJSON, FlatGeobuf, GeoParquet, anything
GDAL reads, any CRS): read once, here, so every door fails the same way, with one line naming the file
and what it was meant to be."""

from __future__ import annotations

from pathlib import Path

from landcover.dataset import DataContractError


def read_vector(path: Path, what: str, bbox: tuple[float, float, float, float] | None = None,
                bbox_crs=None):
    """A GeoDataFrame with features and a CRS. `bbox` (in `bbox_crs`, the file's CRS when None) reads only
    the features that touch it, where the format allows."""
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise DataContractError(f"{path}: {what} file not found")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            frame = gpd.read_parquet(path)
        else:
            if bbox is not None and bbox_crs is not None:
                import pyogrio
                from rasterio.warp import transform_bounds

                crs = pyogrio.read_info(path).get("crs")
                bbox = transform_bounds(bbox_crs, crs, *bbox, densify_pts=21) if crs else None
            frame = gpd.read_file(path, bbox=bbox)
    except Exception as exc:  # noqa: BLE001 - any reader failure names the file
        raise DataContractError(f"{path}: cannot read the {what}: {exc}") from exc
    if not isinstance(frame, gpd.GeoDataFrame):
        raise DataContractError(f"{path}: {what} has no geometry")
    if frame.crs is None:
        raise DataContractError(f"{path}: {what} has no CRS")
    if frame.empty and bbox is None:
        raise DataContractError(f"{path}: {what} has no features")
    return frame
