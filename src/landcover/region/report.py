"""What a region job tells its user: the plan before any pixel (terminal and Prefect artifact) and the
summary at the end."""

from __future__ import annotations

from typing import Any


def plan_lines(plan: dict) -> list[str]:
    gb = plan["scene_gb_to_read"]
    hours = plan["core_hours"]
    unknown = plan["scene_bytes_unknown_tiles"]
    return [
        f"plan for {plan['name']}: {plan['tiles']} tiles ({plan['tile_megapixels']} Mpx) in "
        + ", ".join(f"{k}: {v}" for k, v in plan["tiles_per_zone"].items()),
        "scenes found per season (summed over tiles): "
        + ", ".join(f"{k} {v}" for k, v in plan["scenes_per_season"].items()),
        f"to read: {'unknown' if gb is None else f'{gb} GB'} of scenes"
        + (f" ({unknown} tiles without sizes in the catalogue)" if unknown else ""),
        f"expected: {hours['total']} core-hours (compositing {hours['mosaic']}, inference {hours['predict']}); "
        f"{len(plan['eea_cells'])} EEA cells, {plan['output_megapixels']} Mpx, about {plan['output_gb']} GB of maps "
        f"and {plan['work_gb']} GB of composites and tile maps kept for resuming",
    ]


def plan_markdown(plan: dict) -> str:
    rates = plan["rates"]
    return "\n".join([
        f"# Plan: {plan['name']}", "", *[f"- {line}" for line in plan_lines(plan)], "",
        "| rate (`map.rates`, docs/regions.md) | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in rates.items()],
    ])


def summary_markdown(result: Any) -> str:
    """`result` is a region.stage.MapResult."""
    s = result.summary()
    composite, predict = s.get("composite", {}), s.get("predict", {})
    cells = s.get("assemble", {}).get("cells", {})
    lines = [
        f"# Region {s['plan']['name']}: {len(cells)} EEA cells in {s['seconds']} s", "",
        "| step | written | up to date | failed |", "|---|---|---|---|",
        f"| composite (tiles) | {composite.get('tiles_written', 0)} | {composite.get('tiles_skipped', 0)} | "
        f"{composite.get('tiles_failed', 0)} |",
        f"| predict (tiles) | {predict.get('tiles_written', 0)} | {predict.get('tiles_skipped', 0)} | "
        f"{predict.get('tiles_failed', 0)} |",
        f"| assemble (cells) | {sum(v == 'written' for v in cells.values())} | "
        f"{sum(v == 'skipped' for v in cells.values())} | {sum(k.startswith('assemble') for k in s['failed'])} |",
        "", f"Maps: `{s['out']}/eea/landcover.vrt`, `fuel.vrt`, `confidence.vrt` (EPSG:3035, 10 m); in a "
        f"browser: `landcover view {s['out']}/eea`.",
    ]
    if "statistics" in s:
        lines.append(f"km² per class and fuel model per zone: `{s['out']}/{s['statistics']['file']}`.")
    if s["failed"]:
        lines += ["", "## Failed", *[f"- {k}: {v}" for k, v in sorted(s["failed"].items())]]
    if s["warnings"]:
        lines += ["", "## Warnings", *[f"- {w}" for w in s["warnings"]]]
    return "\n".join(lines)
