"""`landcover view`: a local web server with the maps of a folder on a web map (docs/maps.md, "Looking
at the maps"). One implementation: the command and the tests start it the same way."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from landcover.config import Params
from landcover.errors import LandcoverError
from landcover.viewer.layers import BaseImagery, MapSet


@dataclass
class Viewer:
    sets: list[MapSet]
    base: BaseImagery | None
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def app(self):
        from landcover.viewer.app import create_app

        return create_app(self.sets, self.base)

    def server(self):
        import uvicorn

        # Ctrl-C waits at most 5 s for a browser's open connections (keep-alive tiles) before it stops
        return uvicorn.Server(uvicorn.Config(self.app(), host=self.host, port=self.port, log_level="warning",
                                             timeout_graceful_shutdown=5))


def open_viewer(p: Params, folder: Path, compare: Path | None = None, input_root: Path | None = None,
                port: int | None = None) -> Viewer:
    """The maps of `folder` (and `compare`), with the base imagery of `input_root`, on a free port."""
    host = p.view.host
    port = p.view.port if port is None else port
    sets = [MapSet.discover(folder)] + ([MapSet.discover(compare)] if compare else [])
    base = BaseImagery.discover(input_root) if input_root else None
    check_port(host, port)
    return Viewer(sets, base, host, port)


def check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LandcoverError(f"port {port} on {host} is in use: pick another with --port") from exc
            raise LandcoverError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def view_command(folder: Path) -> str:
    """The command a user runs to look at an output folder (printed by the flows and the model card)."""
    return f"landcover view {folder}"
