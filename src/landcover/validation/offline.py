"""Great Expectations' Data Docs made to work without internet: its pages load Bootstrap,
bootstrap-table, jQuery, Font Awesome and Vega from CDNs and its logo from S3, so on an offline
machine they render unstyled and the validation-results table stays empty. After the site is built,
the vendored copies (`landcover.webassets`) go into `static/vendor/` and every page's links are
pointed at them."""

from __future__ import annotations

import shutil
from pathlib import Path

from landcover.webassets import VENDOR, localise

LOGO = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png"


def make_offline(site: Path) -> list[str]:
    """Rewrite the site in place; returns the CDN addresses no vendored file answers (none today)."""
    assets = site / "static" / "vendor"
    shutil.copytree(VENDOR, assets, dirs_exist_ok=True, ignore=shutil.ignore_patterns("MANIFEST.json"))
    logo = site / "static" / "images" / "logo-long.png"
    left: list[str] = []
    for page in sorted(site.rglob("*.html")):
        html, missing = localise(page.read_text(encoding="utf-8"), page, assets,
                                 {LOGO: logo} if logo.is_file() else None)
        page.write_text(html, encoding="utf-8")
        left += missing
    return sorted(set(left))
