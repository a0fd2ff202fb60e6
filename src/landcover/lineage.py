"""Where a result came from: git commit, data version (data.dvc), split file hash, params hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml

from landcover.io_utils import sha256_file


def git_commit(repo: Path = Path(".")) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def data_version_of(data_root: Path) -> str:
    """The DVC version of a dataset folder: `<root>.dvc` beside it, as `dvc add <root>` writes."""
    root = Path(data_root)
    return data_version(root.parent / f"{root.name}.dvc")


def data_version(dvc_file: Path = Path("data.dvc")) -> str:
    """The md5 DVC recorded for the dataset; 'untracked' when data.dvc is absent."""
    try:
        outs = yaml.safe_load(Path(dvc_file).read_text())["outs"]
        return str(outs[0].get("md5", "unknown"))
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return "untracked"


def file_hash(path: Path) -> str:
    return sha256_file(path)[:16] if Path(path).is_file() else "missing"


def params_hash(section: object) -> str:
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
