"""The assessment as people read it: a Markdown summary (also the Prefect artifact) and the confusion
matrix of the points as a figure."""

from __future__ import annotations

from pathlib import Path

from landcover.accuracy import Assessment


def _pm(figure: dict, scale: float = 1.0, digits: int = 3) -> str:
    if figure["value"] is None:
        return "n/a"
    return f"{figure['value'] * scale:.{digits}f} ± {figure['ci95'] * scale:.{digits}f}"


def markdown(report: dict) -> str:
    o = report["overall"]
    points = report["points"]
    model = report.get("model") or {}
    lines = [
        f"# Accuracy of `{report['map']}`", "",
        f"{points['used']} of {points['read']} reference points used ({report['design']} sample); left out: "
        f"{points['outside']} outside the map, {points['nodata']} on its nodata, "
        f"{points['not_comparable']} with a reference value the crosswalk does not compare.",
        *([f"Model: `{model.get('uri')}` (version {model.get('version') or 'unregistered'})."] if model else []),
        *[f"- {n}" for n in report["notes"]], "",
        f"**Overall accuracy {_pm(o['overall_accuracy'])}** (95 % confidence interval).", "",
        "| class | user's accuracy | producer's accuracy | area share | area km² (error-adjusted) | mapped km² |",
        "|---|---|---|---|---|---|",
    ]
    for c in o["classes"].values():
        area = f"{c['area_km2']:.2f} ± {c['area_km2_ci95']:.2f}" if "area_km2" in c else "n/a"
        lines.append(f"| {c['name']} | {_pm(c['users_accuracy'])} | {_pm(c['producers_accuracy'])} | "
                     f"{_pm(c['area_share'], 100, 2)} % | {area} | {c.get('mapped_km2', 'n/a')} |")
    for title, key in (("climate zone", "by_climate_zone"), ("country", "by_country")):
        if report.get(key):
            lines += ["", f"By {title}:", "", f"| {title} | points | overall accuracy |", "|---|---|---|"]
            lines += [f"| {name} | {f['points']} | {_pm(f['overall_accuracy'])} |" for name, f in report[key].items()]
    if report.get("unmapped_reference_values"):
        lines += ["", "Reference values left out: " + ", ".join(
            f"`{v}` ({n})" for v, n in list(report["unmapped_reference_values"].items())[:20])]
    return "\n".join(lines) + "\n"


def confusion_figure(a: Assessment, names: list[str], path: Path) -> Path:
    from landcover.plots import confusion_matrix_figure

    return confusion_matrix_figure(a.counts.T, path, f"Reference points (n = {a.points})", names, xlabel="map",
                                   ylabel="reference", colour_label="share of the reference class's points")
