"""The dataset is versioned with DVC: push to a local remote, lose everything, pull it back."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import yaml


def _dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_and_pull_from_a_local_remote(tiny_dataset: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    shutil.copytree(tiny_dataset, repo / "data")
    before = _checksums(repo / "data")
    _dvc(repo, "add", "-q", "data")
    meta = yaml.safe_load((repo / "data.dvc").read_text())
    assert meta["outs"][0]["path"] == "data" and meta["outs"][0]["nfiles"] == len(before)

    remote = tmp_path / "remote"
    _dvc(repo, "remote", "add", "-d", "local", str(remote))
    _dvc(repo, "push", "-q")
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    _dvc(repo, "pull", "-q")
    assert _checksums(repo / "data") == before
    assert "up to date" in _dvc(repo, "status").lower() or _dvc(repo, "status", "--json").strip() == "{}"
