"""`--source` to a scene source: a preset, a STAC API URL, a STAC JSON file, a SAFE product (folder
or zip) or a folder holding a static catalog or SAFE products at any depth."""

from __future__ import annotations

import os
from pathlib import Path

from landcover.config import MosaicParams
from landcover.mosaic.safe import SafeSource, is_product, walk_products
from landcover.mosaic.sources import IDENTITY_ASSETS, LocalSource, SourceError, StacApiSource, read_static

S3_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

Source = LocalSource | StacApiSource | SafeSource


def _api(preset, mp: MosaicParams, name: str) -> StacApiSource:
    if preset.s3_endpoint and not all(os.environ.get(k) for k in S3_CREDENTIALS):
        raise SourceError(f"source {name}: its scenes are read from the S3 store at {preset.s3_endpoint}, which "
                          f"needs {' and '.join(S3_CREDENTIALS)} in the environment (your account's S3 keys; "
                          "docs/real-data.md)")
    return StacApiSource(preset, mp.retries)


def open_source(spec: str, mp: MosaicParams) -> Source:
    if mp.preset and mp.preset not in mp.presets:
        raise SourceError(f"mosaic.preset {mp.preset!r} is not one of mosaic.presets ({', '.join(mp.presets)})")
    presets = {name: p.assets for name, p in mp.presets.items()}
    chosen = {mp.preset: presets[mp.preset]} if mp.preset else None
    if spec in mp.presets:
        return _api(mp.presets[spec], mp, spec)
    if spec.startswith(("http://", "https://")):
        match = mp.presets[mp.preset] if mp.preset else next(
            (p for p in mp.presets.values() if p.url and p.url.rstrip("/") == spec.rstrip("/")), None)
        if match is None:
            raise SourceError(f"{spec}: no preset in mosaic.presets has this URL; set mosaic.preset")
        return _api(match.model_copy(update={"url": spec}), mp, spec)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"{spec}: neither a preset ({', '.join(mp.presets)}), a URL, nor an existing path")
    candidates = chosen or {"band names": IDENTITY_ASSETS, **presets}
    if is_product(path):
        return SafeSource(path)
    if path.is_dir():
        for name in ("catalog.json", "collection.json"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            if next(walk_products(path), None) is None:
                raise SourceError(f"{spec}: folder holds no .SAFE product (folder or zip, at any depth), "
                                  "catalog.json or collection.json")
            return SafeSource(path)
    return LocalSource({"kind": "stac-static", "path": str(path.resolve())}, read_static(path), candidates)
