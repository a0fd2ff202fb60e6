"""The viewer's web application: the page, its vendored assets, the layers' description and legends,
the map tiles, the base imagery and the pixel query. No asset comes from the internet."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from landcover.viewer.layers import BaseImagery, MapSet, kinds
from landcover.viewer.tiles import base_tile, map_tile, pixel
from landcover.webassets import LEAFLET, VENDOR

STATIC = Path(__file__).parent / "static"


def _transparent_png() -> bytes:
    """A fully transparent 256 px tile: where no map is shown (a browser logs no error for it, unlike a 204)."""
    import numpy as np
    from rio_tiler.models import ImageData

    return ImageData(np.ma.MaskedArray(np.zeros((1, 256, 256), np.uint8), mask=True)).render(
        img_format="PNG", colormap={0: (0, 0, 0, 0)})  # RGBA, as the map tiles


EMPTY_PNG = _transparent_png()


def _hex(rgba: tuple[int, ...]) -> str:
    return "#" + "".join(f"{v:02x}" for v in rgba[:3])


def legend(kind, rasters) -> list[dict]:
    """The categories a layer shows (those on its maps), or the stops of a ramp."""
    shown = present(rasters) if kind.legend else set(kind.names)
    return [{"code": c, "name": n, "colour": _hex(kind.colours[c])} for c, n in sorted(kind.names.items())
            if c in kind.colours and c in shown]


def describe(sets: list[MapSet], base: BaseImagery | None) -> dict:
    table = kinds()
    out = []
    for k, maps in enumerate(sets):
        out.append({
            "id": k, "folder": str(maps.folder), "name": maps.folder.name or str(maps.folder),
            "bounds": maps.bounds(), "model": maps.model, "warnings": maps.warnings,
            # where each map file lies: outlines a user sees (and clicks to zoom to) when the maps are
            # too small to see, as a continent's scattered cities are
            "footprints": [{"bounds": r.bounds, "name": str(r.path.parent.relative_to(maps.folder))}
                           for r in maps.layers[next(iter(maps.layers))]],
            "layers": [{"key": key, "title": table[key].title, "files": len(rasters),
                        "legend": legend(table[key], rasters), "ramp": not table[key].legend}
                       for key, rasters in maps.layers.items()],
        })
    return {"sets": out, "base": base is not None, "leaflet": f"/vendor/{LEAFLET}"}


def present(rasters, side: int = 512) -> set[int]:
    """The codes that appear on the maps, from a small decimated read of each (its overviews, where it
    has them): the legend lists what the map shows, without reading a large area in full."""
    import numpy as np
    import rasterio

    found: set[int] = set()
    for raster in rasters:
        with rasterio.open(raster.path) as ds:
            scale = max(1.0, max(ds.width, ds.height) / side)
            data = ds.read(1, out_shape=(max(1, int(ds.height / scale)), max(1, int(ds.width / scale))))
        found |= {int(v) for v in np.unique(data)}
    return found


def create_app(sets: list[MapSet], base: BaseImagery | None = None) -> FastAPI:
    app = FastAPI(title="landcover view", docs_url=None, redoc_url=None)
    table = kinds()
    description = describe(sets, base)
    app.mount("/vendor", StaticFiles(directory=VENDOR), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/layers")
    def layers() -> JSONResponse:
        return JSONResponse(description)

    @app.get("/tiles/{set_id}/{layer}/{z}/{x}/{y}.png")
    def tile(set_id: int, layer: str, z: int, x: int, y: int) -> Response:
        if set_id >= len(sets) or layer not in table:
            raise HTTPException(404, f"no layer {layer} in map set {set_id}")
        png = map_tile(sets[set_id], table[layer], z, x, y)
        return Response(EMPTY_PNG if png is None else png, media_type="image/png")

    @app.get("/base/{z}/{x}/{y}.png")
    def base_layer(z: int, x: int, y: int) -> Response:
        if base is None:
            raise HTTPException(404, "no base imagery (start the viewer with --input DATA)")
        png = base_tile(base, z, x, y)
        return Response(EMPTY_PNG if png is None else png, media_type="image/png")

    @app.get("/api/point")
    def point(lon: float, lat: float, set_id: int = 0) -> JSONResponse:
        if set_id >= len(sets):
            raise HTTPException(404, f"no map set {set_id}")
        maps = sets[set_id]
        answer: dict = {"lon": lon, "lat": lat, "set": set_id, "model": maps.model}
        for key in maps.layers:
            found = pixel(maps, key, lon, lat)
            if found is None:
                answer[key] = None
                continue
            value, raster = found
            answer[key] = {"value": value, "name": table[key].names.get(value) if table[key].legend else f"{value} %",
                           "file": str(raster.path.relative_to(maps.folder))}
        return JSONResponse(answer)

    return app
