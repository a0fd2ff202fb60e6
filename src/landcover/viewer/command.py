"""`landcover view`: look at the maps of a folder in a browser, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.viewer.stage import open_viewer

    viewer = open_viewer(params, args.folder, args.compare, args.input, args.port)
    for maps in viewer.sets:
        layers = ", ".join(f"{k} ({len(v)} files)" for k, v in maps.layers.items())
        print(f"{maps.folder}: {layers}")
        for warning in maps.warnings:
            print(f"  warning: {warning}")
    print(f"view: open {viewer.url} (Ctrl-C stops the server)", flush=True)
    viewer.server().run()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="the maps of a folder in a browser: layers, legends, pixel query, compare",
                       description="Start a local web server (127.0.0.1) showing the maps of an area-maps, region, "
                       "batch-inference or change folder on a web map: land cover, fuel model, confidence, "
                       "transitions, in the colours and names of the data contract, with legends; a click shows "
                       "the pixel's class, fuel model, confidence and model version. Works offline.")
    p.add_argument("folder", type=Path, help="folder of maps (landcover.tif, fuel.tif, ... under it)")
    p.add_argument("--compare", type=Path, help="a second map version, shown side by side")
    p.add_argument("--input", type=Path, help="dataset root: the tiles' summer composites as a true-colour base")
    p.add_argument("--port", type=int, help="port (params view.port)")
    p.set_defaults(handler=_run)
