"""The batch-inference output contract (BRIEF section 4), for the stages that write it and those
that read it (areas, change, landscape): per tile `<city_id>/<tile_id>/`, three uint8 COGs on the
input's grid, an optional per-class probability COG, the STAC Item and the provenance sidecar, which
is written last, so a tile whose sidecar exists is complete."""

from __future__ import annotations

from pathlib import Path

OUTPUTS = ("landcover.tif", "fuel.tif", "confidence.tif")
PROBABILITIES = "probabilities.tif"  # optional (predict.probabilities): one band per class, percent
PROBABILITY_NODATA = 255
PROVENANCE = "provenance.json"
STAC_ITEM = "item.json"


def complete_tiles(out_dir: Path) -> dict[str, Path]:
    """`<city>/<tile>` -> folder, for every tile of a batch-inference folder whose provenance
    sidecar (written last) says it is complete."""
    markers = sorted(Path(out_dir).glob(f"*/*/{PROVENANCE}"))
    return {f"{p.parent.parent.name}/{p.parent.name}": p.parent for p in markers}


def provenance_model(record: dict) -> dict | None:
    """The model a map's provenance record names: a predicted tile's `model`, a region cell's first of
    `models`, a change map's `after` model (read by the assessment and the viewer alike)."""
    model = record.get("model") or (record.get("models") or [None])[0] or (record.get("after") or {}).get("model")
    return model if isinstance(model, dict) else None
