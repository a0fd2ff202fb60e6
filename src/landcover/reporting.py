"""Markdown summaries of stage outputs, for Prefect artifacts and terminal output.

Presentation only: every number comes from a file the stage wrote.
"""

from __future__ import annotations

import json
from pathlib import Path


def _load(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def validation_markdown(summary_path: Path) -> str:
    s = _load(summary_path)
    if not s:
        return f"No validation summary at `{summary_path}`."
    reasons = "\n".join(f"| {k} | {n} |" for k, n in s.get("quarantined_by_reason", {}).items() if n)
    return (
        f"# Tile validation\n\n{s['tiles_checked']} tiles checked, {s['tiles_passed']} passed, "
        f"{s['tiles_quarantined']} quarantined ({s['quarantined_fraction']:.1%}).\n\n"
        + (f"| reason | tiles |\n|---|---:|\n{reasons}\n\n" if reasons else "")
        + f"Data Docs: `{Path(summary_path).parent / 'data_docs' / 'index.html'}`\n"
    )


def split_markdown(stats_path: Path) -> str:
    s = _load(stats_path)
    if not s:
        return f"No split statistics at `{stats_path}`."
    rows = "\n".join(
        f"| {k} | {s[k]['cities']} | {s[k]['tiles']} | {s[k]['tile_share']:.1%} |" for k in ("train", "val", "test")
    )
    return (
        "# Split\n\n| split | cities | tiles | tile share |\n|---|---:|---:|---:|\n" + rows + "\n\n"
        f"Largest share differences from the whole: zones {s.get('max_zone_share_diff', float('nan')):.3f}, "
        f"classes {s.get('max_class_share_diff', float('nan')):.3f}; seed {s.get('seed')}.\n"
    )


def pack_markdown(metrics_path: Path) -> str:
    m = _load(metrics_path)
    if not m:
        return f"No training-store figures at `{metrics_path}`."
    return (
        f"# Training store\n\n{m['tiles_train']} train and {m['tiles_val']} val tiles packed in {m['build_s']} s: "
        f"{m['store_mb']} MB, {m['store_to_geotiff_size']}x the GeoTIFFs' {m['geotiff_mb']} MB"
        + (f"; {m['tiles_resumed']} tiles kept from an interrupted build" if m.get("tiles_resumed") else "") + ".\n"
    )


def evaluation_markdown(metrics_path: Path) -> str:
    m = _load(metrics_path)
    if not m:
        return f"No evaluation metrics at `{metrics_path}`."
    iou = "\n".join(f"| {k} | {v:.3f} | {m['f1'][k]:.3f} |" for k, v in m["iou"].items())
    seasons = ", ".join(f"{k} {v:.3f}" for k, v in m.get("missing_season", {}).items())
    zones = ", ".join(f"{k} {v:.3f}" for k, v in m.get("per_zone", {}).items())
    return (
        f"# Test evaluation\n\nModel `{m['model_uri']}` on {m['tiles']} whole test tiles ({m['pixels']:,} "
        f"labelled pixels): **mIoU {m['miou']:.3f}**, overall accuracy {m['accuracy']:.3f}.\n\n"
        f"| class | IoU | F1 |\n|---|---:|---:|\n{iou}\n\n"
        f"mIoU per climate zone: {zones}.\n\nmIoU with one season missing: {seasons}.\n"
    )


def promotion_markdown(decision_path: Path) -> str:
    d = _load(decision_path)
    if not d:
        return f"No promotion decision at `{decision_path}`."
    reasons = "\n".join(f"- {r}" for r in d.get("reasons", [])) or "- all gates passed"
    return (
        f"# Promotion\n\nModel `{d.get('model_name')}` version **{d.get('version')}** is now "
        f"**{d.get('alias')}**.\n\n{reasons}\n"
    )


def inference_markdown(summary_path: Path) -> str:
    s = _load(summary_path)
    if not s:
        return f"No inference summary at `{summary_path}`."
    failed = "\n".join(f"- `{k}`: {v}" for k, v in sorted(s.get("failed", {}).items()))
    return (
        f"# Batch inference\n\n| tiles written | up to date | failed | km² | seconds | model |\n"
        f"|---:|---:|---:|---:|---:|---|\n| {s['tiles_written']} | {s['tiles_skipped']} | {s['tiles_failed']} | "
        f"{s['km2']} | {s['seconds']} | `{s['model']}` (version {s.get('model_version') or '-'}) |\n"
        + (f"\nFire-model landscapes (`landscape.lcp`, `elmfire/`): {ls['tiles_written']} written, "
           f"{ls['tiles_skipped']} up to date, {ls['tiles_failed']} failed.\n" if (ls := s.get("landscape")) else "")
        + (f"\nFailed tiles:\n{failed}\n" if failed else "")
        + f"\nLook at the maps in a browser: `landcover view {summary_path.parent}`\n"
    )


def areas_markdown(summary_path: Path) -> str:
    """One map per city: what was assembled, and which tiles were kept out of a map and why."""
    s = _load(summary_path)
    if not s:
        return f"No area-maps summary at `{summary_path}`."
    rows = "".join(f"| `{a['area']}` | EPSG:{a['epsg']} | {a['tiles']} | {a['width']} x {a['height']} | "
                   f"{a['extent_km2']} | `{Path(s['out']) / a['area'] / 'quicklook.png'}` |\n" for a in s["areas"])
    notes = [f"- `{city}` spans several UTM zones: one map each ({', '.join(maps)})"
             for city, maps in sorted(s["split_by_zone"].items())]
    notes += [f"- left out `{tile}`: {why}" for tile, why in sorted(s["tiles_left_out"].items())]
    notes += [f"- failed `{area}`: {why}" for area, why in sorted(s["failed"].items())]
    return (f"# Area maps: `{s['out']}`\n\n{s['areas_written']} written, {s['areas_skipped']} up to date. "
            "Each holds `landcover`, `fuel` and `confidence` as VRT and COG, with `.qml` and `.sld` styles.\n\n"
            "| area | CRS | tiles | pixels | extent km² | quicklook |\n|---|---|---:|---|---:|---|\n" + rows
            + ("\n" + "\n".join(notes) + "\n" if notes else ""))


def change_markdown(summary_path: Path) -> str:
    """Two map versions compared: area mapped in both, what changed into what, what was left out."""
    s = _load(summary_path)
    if not s:
        return f"No change summary at `{summary_path}`."
    models = {k: ", ".join(f"`{m.get('uri') or m.get('name')}`" for m in v) for k, v in s["models"].items()}
    rows = "".join(f"| {t['from']} | {t['to']} | {t['km2']} |\n" for t in s["top_transitions"])
    notes = [f"- only in before: `{k}`" for k in s["only_in_before"]] + [
        f"- only in after: `{k}`" for k in s["only_in_after"]] + [
        f"- failed `{k}`: {v}" for k, v in sorted(s["failed"].items())]
    return (f"# Map change: `{s['out']}`\n\nBefore: {models.get('before', '-')}; after: {models.get('after', '-')}.\n\n"
            f"{s['tiles_compared']} tiles compared: {s['mapped_km2']} km² mapped in both, {s['changed_km2']} km² "
            f"of another class (change mask: both maps at least {s['min_confidence']} % sure).\n\n"
            "| from | to | km² |\n|---|---|---:|\n" + rows + ("\n" + "\n".join(notes) + "\n" if notes else ""))


def dataset_markdown(summary: dict, source: dict) -> str:
    """The build-dataset run: tiles mosaicked, labels burned, what failed and why."""
    m = summary["mosaic"]
    lines = [f"# Dataset build: `{m['out']}`", "",
             f"Source: {', '.join(f'{k} `{v}`' for k, v in source.items())}", "",
             "| step | written | up to date | failed |", "|---|---:|---:|---:|",
             f"| mosaic | {m['tiles_written']} | {m['tiles_skipped']} | {m['tiles_failed']} |"]
    labels = summary.get("labels")
    if labels:
        lines.append(f"| labels | {labels['tiles_written']} | {labels['tiles_skipped']} | {labels['tiles_failed']} |")
    lines += ["", f"{m['megapixels']} Mpx composited in {m['seconds']} s."]
    for key, notes in sorted(m["warnings"].items()):
        lines.append(f"- `{key}`: {'; '.join(notes)}")
    failed = {**m["failed"], **(labels["failed"] if labels else {})}
    if failed:
        lines += ["", "## Failed", ""] + [f"- `{k}`: {v}" for k, v in sorted(failed.items())]
    if labels and labels["unmapped_values"]:
        top = list(labels["unmapped_values"].items())[:15]
        lines += ["", f"Unmapped reference values (set to 0): {labels['unmapped_pixels']} pixels", ""]
        lines += [f"- `{v}`: {n}" for v, n in top]
    return "\n".join(lines) + "\n"


def metrics_markdown(stage: str, paths: list[Path]) -> str:
    """Any stage's metrics files (those dvc.yaml declares), their top-level figures as a table: what a
    stage without a summary of its own publishes."""
    rows = []
    for path in paths:
        found = _load(path)
        if not found:
            rows.append(f"| `{path}` | (missing) |")
            continue
        rows += [f"| {k} | {v} |" for k, v in found.items() if isinstance(v, int | float | str | bool)]
    return f"# {stage}\n\n| figure | value |\n|---|---|\n" + "\n".join(rows) + "\n"
