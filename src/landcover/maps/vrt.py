"""A GDAL VRT over an area's tiles: the map at once, no pixels copied, the colour table and class
names kept (GDAL and QGIS read both from the VRT)."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from landcover.maps.layout import Area


def vrt_xml(area: Area, raster: str, vrt_path: Path, dtype: str, nodata: int | None,
            colormap: dict[int, tuple[int, int, int, int]] | None, categories: dict[int, str] | None,
            description: str) -> str:
    t = area.transform
    band = [f'  <VRTRasterBand dataType="{dtype}" band="1">\n',
            f"    <Description>{escape(description)}</Description>\n"]
    if nodata is not None:
        band.append(f"    <NoDataValue>{nodata}</NoDataValue>\n")
    if colormap:
        band.append("    <ColorInterp>Palette</ColorInterp>\n    <ColorTable>\n")
        band += [f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>\n'
                 for r, g, b, a in (colormap.get(i, (0, 0, 0, 0)) for i in range(256))]
        band.append("    </ColorTable>\n")
    if categories:
        top = max(categories)
        band.append("    <CategoryNames>\n")
        band += [f"      <Category>{escape(categories.get(i, ''))}</Category>\n" for i in range(top + 1)]
        band.append("    </CategoryNames>\n")
    for p in area.tiles:
        source = os.path.relpath(p.tile_dir / raster, vrt_path.parent)
        band.append(
            "    <ComplexSource>\n"
            f'      <SourceFilename relativeToVRT="1">{escape(source)}</SourceFilename>\n'
            "      <SourceBand>1</SourceBand>\n"
            f'      <SrcRect xOff="0" yOff="0" xSize="{p.width}" ySize="{p.height}"/>\n'
            f'      <DstRect xOff="{p.col}" yOff="{p.row}" xSize="{p.width}" ySize="{p.height}"/>\n'
            + (f"      <NODATA>{nodata}</NODATA>\n" if nodata is not None else "")
            + "    </ComplexSource>\n")
    band.append("  </VRTRasterBand>\n")
    return (f'<VRTDataset rasterXSize="{area.width}" rasterYSize="{area.height}">\n'
            f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(area.crs.to_wkt())}</SRS>\n'
            f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>\n"
            + "".join(band) + "</VRTDataset>\n")
