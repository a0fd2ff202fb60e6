"""Browser assets vendored from the npm registry (scripts/vendor_web_assets.py; versions, integrity
hashes and licences in `vendor/MANIFEST.json`), so the map viewer and the Data Docs work on a machine
without internet: nothing is fetched from a CDN at run time.

`CDN` maps each address Great Expectations' Data Docs load (unpkg, jsDelivr, cdnjs, bootstrapcdn,
code.jquery.com) to the same file here; `localise` rewrites a page's links to them."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

VENDOR = Path(__file__).parent / "vendor"

CDN: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap-4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap-4.3.1/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table-1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table-1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "forevolve-bootstrap-dark-1.1.0/dist/css/bootstrap-prefers-dark.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js-1.12.9/dist/umd/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fortawesome-fontawesome-free-6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/build/vega-embed.min.js",
}
LEAFLET = "leaflet-1.9.4/dist"
_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_URL = re.compile(r"""(?P<attr>src|href)=(?P<q>["'])(?P<url>https?://[^"']+)(?P=q)""")
_INTEGRITY = re.compile(r"""\s(?:integrity|crossorigin)=(["'])[^"']*\1""")
_CDN_HOSTS = ("unpkg.com", "cdn.jsdelivr.net", "cdnjs.cloudflare.com", "bootstrapcdn.com", "code.jquery.com")


def _matches_integrity(tag: str, path: Path) -> bool:
    """A tag's Subresource Integrity hash, checked against the vendored file (no hash: nothing to check)."""
    found = re.search(r"""integrity=(["'])(sha\d+)-([^"']+)\1""", tag)
    if not found:
        return True
    digest = hashlib.new(found[2], path.read_bytes()).digest()
    return base64.b64encode(digest).decode() == found[3]


def localise(html: str, page: Path, assets: Path, extra: dict[str, Path] | None = None) -> tuple[str, list[str]]:
    """`html` (of the file `page`) with the `<script>`, `<link>` and `<img>` addresses of `CDN` (and of
    `extra`: an address prefix -> a local file) pointed at files relative to the page, `assets` being a
    copy of `VENDOR` already in place. Subresource Integrity hashes are checked against the vendored files and then
    dropped with `crossorigin`, which a page opened from disk cannot satisfy. Returns the page and the
    CDN addresses left as they were (no file for them, or a file whose hash differs)."""
    left = []

    def target(url: str) -> Path | None:
        if url in CDN:
            return assets / CDN[url]
        for prefix, path in (extra or {}).items():
            if url.startswith(prefix):
                return path
        return None

    def tag(match: re.Match) -> str:
        text = match.group(0)
        found = _URL.search(text)
        if not found:
            return text
        path = target(found["url"])
        if path is None or not path.is_file() or not _matches_integrity(text, path):
            if any(host in found["url"] for host in _CDN_HOSTS):
                left.append(found["url"])
            return text
        local = os.path.relpath(path, page.parent)
        text = text[:found.start()] + f"{found['attr']}={found['q']}{local}{found['q']}" + text[found.end():]
        return _INTEGRITY.sub("", text)

    return _TAG.sub(tag, html), left
