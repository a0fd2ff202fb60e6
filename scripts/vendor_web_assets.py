"""Vendor the browser assets the map viewer and the Data Docs use, from the npm registry, pinned.

Writes `src/landcover/webassets/vendor/<package>-<version>/` with the files listed below (paths as
in the package, so a stylesheet's relative links to its fonts and images still resolve) and each
package's licence, and `MANIFEST.json` (package, version, the registry's integrity hash, files,
licence). Run it to change a version; the files are committed, so nothing is fetched at run time
and both pages work on an offline machine.

    python scripts/vendor_web_assets.py [--tarballs DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "landcover" / "webassets" / "vendor"

# package@version -> files inside the package (folders copied whole); the first LICENSE* found is kept
PACKAGES = {
    "leaflet@1.9.4": ["dist/leaflet.js", "dist/leaflet.css", "dist/images"],
    "bootstrap@4.3.1": ["dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js"],
    "bootstrap-table@1.19.1": ["dist/bootstrap-table.min.css", "dist/bootstrap-table.min.js",
                               "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"],
    "bootstrap-table@1.19.0": ["dist/extensions/filter-control/bootstrap-table-filter-control.css",
                               "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"],
    "bootstrap-datepicker@1.9.0": ["dist/css/bootstrap-datepicker.min.css", "dist/js/bootstrap-datepicker.min.js"],
    "@forevolve/bootstrap-dark@1.1.0": ["dist/css/bootstrap-prefers-dark.css"],
    "jquery@3.7.1": ["dist/jquery.min.js"],
    "popper.js@1.12.9": ["dist/umd/popper.min.js"],
    "@fortawesome/fontawesome-free@6.6.0": ["css/all.min.css", "webfonts"],
    # the Data Docs ask jsDelivr for vega@5, vega-lite@5 and vega-embed@6: the newest of each major, pinned
    "vega@5.33.1": ["build/vega.min.js"],
    "vega-lite@5.23.0": ["build/vega-lite.min.js"],
    "vega-embed@6.29.0": ["build/vega-embed.min.js"],
}


def folder_name(spec: str) -> str:
    name, version = spec.rsplit("@", 1)
    return f"{name.replace('@', '').replace('/', '-')}-{version}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarballs", type=Path, help="folder of `npm pack` tarballs already fetched")
    args = ap.parse_args()
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec, files in PACKAGES.items():
            tarball = args.tarballs / f"{folder_name(spec)}.tgz" if args.tarballs else None
            if tarball is None or not tarball.is_file():
                out = subprocess.run(["npm", "pack", spec, "--json", "--pack-destination", tmp], check=True,
                                     capture_output=True, text=True).stdout
                tarball = Path(tmp) / json.loads(out)[0]["filename"]
            integrity = subprocess.run(["npm", "view", spec, "dist.integrity"], check=True, capture_output=True,
                                       text=True).stdout.strip()
            unpacked = Path(tmp) / folder_name(spec)
            with tarfile.open(tarball) as archive:
                archive.extractall(unpacked, filter="data")
            package = unpacked / "package"
            target = OUT / folder_name(spec)
            shutil.rmtree(target, ignore_errors=True)
            for rel in files:
                src, dst = package / rel, target / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
            licences = sorted(package.glob("LICEN[CS]E*"))
            meta = json.loads((package / "package.json").read_text())
            if licences:
                shutil.copy2(licences[0], target / licences[0].name)
            else:  # popper.js 1.12.9 ships none: its licence is in package.json and each file's header
                (target / "LICENSE").write_text(f"{meta['name']} {meta['version']}: {meta.get('license')} licence "
                                                f"(package.json; the files' headers name the copyright holder).\n")
            manifest[spec] = {"folder": target.name, "integrity": integrity, "license": meta.get("license"),
                              "files": files}
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"vendored {len(manifest)} packages into {OUT}")


if __name__ == "__main__":
    main()
