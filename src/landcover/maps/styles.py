"""Ready-made styles for the output rasters: QGIS `.qml` sidecars and OGC SLD for map servers.

QGIS applies `<name>.qml` automatically when it opens `<name>.tif`, so a user sees the classes in
their colours with their names (land cover), FBFM40 codes with their names (fuel) and a ramp
(confidence) without building a style. The SLD carries the same symbology for GeoServer or
MapServer. Both are plain text generated from the class and fuel tables, so they never drift
from the rasters' colour tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from landcover.classes import CLASSES
from landcover.fuel import FBFM40
from landcover.io_utils import atomic_write_text


@dataclass(frozen=True)
class Entry:
    value: int
    colour: str  # "#rrggbb"
    label: str


# confidence (top-class probability, percent): red where the map is a guess, green where it is sure
CONFIDENCE_RAMP = (Entry(1, "#d7191c", "1 %"), Entry(50, "#fdae61", "50 %"), Entry(70, "#ffffbf", "70 %"),
                   Entry(85, "#a6d96a", "85 %"), Entry(100, "#1a9641", "100 %"))


def land_cover_entries() -> list[Entry]:
    return [Entry(c.code, c.colour, c.name) for c in CLASSES]


def fuel_entries() -> list[Entry]:
    return [Entry(code, colour, f"{code} {short} {name}") for code, (short, name, colour) in FBFM40.items()]


def _qml(renderer: str) -> str:
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.34" styleCategories="Symbology">\n'
            "  <pipe>\n" f"{renderer}"
            '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
            '    <rasterresampler maxOversampling="2"/>\n'
            "  </pipe>\n"
            "  <blendMode>0</blendMode>\n"
            "</qgis>\n")


def _item(tag: str, e: Entry) -> str:
    return f'<{tag} value="{e.value}" color="{e.colour}" alpha="255" label="{escape(e.label)}"/>'


def paletted_qml(entries: list[Entry]) -> str:
    """Categories: each code its colour and name; codes not listed (0, nodata) stay transparent."""
    items = "".join(f"        {_item('paletteEntry', e)}\n" for e in entries)
    return _qml('    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
                "      <rasterTransparency/>\n"
                f"      <colorPalette>\n{items}      </colorPalette>\n"
                "    </rasterrenderer>\n")


def ramp_qml(stops: tuple[Entry, ...]) -> str:
    lo, hi = stops[0].value, stops[-1].value
    items = "".join(f"          {_item('item', e)}\n" for e in stops)
    return _qml(f'    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" '
                f'classificationMin="{lo}" classificationMax="{hi}" nodataColor="">\n'
                "      <rasterTransparency/>\n"
                "      <rastershader>\n"
                f'        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
                f'minimumValue="{lo}" maximumValue="{hi}">\n{items}'
                "        </colorrampshader>\n"
                "      </rastershader>\n"
                "    </rasterrenderer>\n")


def sld(name: str, entries: list[Entry] | tuple[Entry, ...], kind: str) -> str:
    """SLD 1.0 raster symbolizer; `kind` is "values" (categories) or "ramp"."""
    items = "".join(f'            <ColorMapEntry color="{e.colour}" quantity="{e.value}" label="{escape(e.label)}"/>\n'
                    for e in entries)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<StyledLayerDescriptor version="1.0.0" xmlns="http://www.opengis.net/sld" '
            'xmlns:ogc="http://www.opengis.net/ogc" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.opengis.net/sld '
            'http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd">\n'
            f"  <NamedLayer>\n    <Name>{escape(name)}</Name>\n    <UserStyle>\n"
            f"      <Title>{escape(name)}</Title>\n      <FeatureTypeStyle>\n        <Rule>\n"
            "          <RasterSymbolizer>\n"
            f'            <ColorMap type="{kind}">\n{items}            </ColorMap>\n'
            "          </RasterSymbolizer>\n        </Rule>\n      </FeatureTypeStyle>\n"
            "    </UserStyle>\n  </NamedLayer>\n</StyledLayerDescriptor>\n")


def change_entries() -> dict[str, list[Entry]]:
    from landcover.transitions import MASK_NAMES, transition_colormap, transition_names

    cmap = transition_colormap()
    mask_colours = {1: "#e1e1e1", 2: "#d7191c", 3: "#fdae61"}
    return {"transition": [Entry(code, "#{:02x}{:02x}{:02x}".format(*cmap[code][:3]), name)
                           for code, name in sorted(transition_names().items())],
            "change_mask": [Entry(code, mask_colours[code], name) for code, name in sorted(MASK_NAMES.items())]}


def write_styles(folder: Path, stems: tuple[str, ...] = ("landcover", "fuel", "confidence")) -> list[Path]:
    """`.qml` and `.sld` beside each named raster of `folder` (atomic writes)."""
    made = {
        "landcover": lambda: (paletted_qml(land_cover_entries()), sld("land cover", land_cover_entries(), "values")),
        "fuel": lambda: (paletted_qml(fuel_entries()), sld("FBFM40 fuel model", fuel_entries(), "values")),
        "confidence": lambda: (ramp_qml(CONFIDENCE_RAMP), sld("confidence (percent)", CONFIDENCE_RAMP, "ramp")),
        "transition": lambda: (paletted_qml(change_entries()["transition"]),
                               sld("land cover transition", change_entries()["transition"], "values")),
        "change_mask": lambda: (paletted_qml(change_entries()["change_mask"]),
                                sld("change mask", change_entries()["change_mask"], "values")),
    }
    written = []
    for stem in stems:
        qml, sld_text = made[stem]()
        for suffix, text in ((".qml", qml), (".sld", sld_text)):
            atomic_write_text(folder / f"{stem}{suffix}", text)
            written.append(folder / f"{stem}{suffix}")
    return written
