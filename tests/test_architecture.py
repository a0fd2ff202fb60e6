"""The layers hold (import-linter's contracts, and they can fail), the CLI's registry fails loudly, and
every DVC stage lists the code and the params sections its command runs, computed from the imports."""

from __future__ import annotations

import ast
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from landcover.config import Params, stage_packages

SRC = REPO / "src"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(*paths: Path) -> subprocess.CompletedProcess:
    """import-linter with the project's contracts over the landcover and flows packages found on `paths`."""
    return subprocess.run([str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=paths[0], env={"PYTHONPATH": ":".join(map(str, paths)),
                                             "PATH": str(Path(sys.executable).parent)},
                          capture_output=True, text=True, timeout=120)


def test_the_layer_contracts_hold() -> None:
    done = _lint(SRC, REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def _copy_tree(target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(SRC / "landcover", target / "landcover", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "flows", target / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("change/stage.py", "from landcover.areas.stage import run_areas", "landcover.change is not allowed to import "
                                                                        "landcover.areas"),
    ("fuelmap.py", "from landcover.inference.writer import write_tile", "landcover.fuelmap is not allowed to "
                                                                          "import landcover.inference"),
    ("maps/styles.py", "from landcover.transitions import BASE\nimport landcover.change.report",
     "landcover.maps is not allowed to import landcover.change"),
    ("mosaic/sources.py", "from landcover.mosaic.safe import SafeSource", "No cycles are allowed in landcover.mosaic"),
    ("candidate.py", "from landcover.config import Params", "landcover.candidate is not allowed to import "
                                                            "landcover.config"),
])
def test_a_deliberate_violation_breaks_a_contract(tmp_path, module, line, broken) -> None:
    """A stage importing another, a contract importing a stage, shared code importing a stage, a cycle
    inside a package and a contract importing a service each fail lint-imports, naming the import."""
    root = _copy_tree(tmp_path / "tree")
    with (root / "landcover" / module).open("a") as f:
        f.write(f"\n{line}  # noqa\n")
    done = _lint(root)
    assert done.returncode != 0 and broken in done.stdout, done.stdout


def test_a_listed_stage_that_does_not_import_stops_the_cli(monkeypatch) -> None:
    from landcover import cli, config

    monkeypatch.setattr(cli, "stage_packages", lambda: {**config.stage_packages(), "ghost": "landcover.ghost"})
    with pytest.raises(cli.StageNotImportable, match="stage ghost: landcover.ghost.command does not import"):
        cli.build_parser()
    # every stage params.yaml names has a command module and registers its subcommand
    monkeypatch.undo()
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"synth", "validate", "split", "pack", "train", "evaluate", "promote", "predict",
                             "landscape", "areas", "change", "mosaic", "labels", "map", "assess",
                             "view"} == set(stage_packages())


# --------------------------------------------------------------------------- DVC deps from the code


def _module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(module: str) -> set[str]:
    """The landcover modules `module` imports anywhere in its file (function-level imports too), and
    the packages above each (importing a.b.c runs a/__init__ and a/b/__init__)."""
    path = _module_file(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            names = [f"{base}.{a.name}" if _module_file(f"{base}.{a.name}") else base for a in node.names]
        for name in names:
            if name.split(".")[0] != "landcover":
                continue
            parts = name.split(".")
            found |= {".".join(parts[:k]) for k in range(1, len(parts) + 1) if _module_file(".".join(parts[:k]))}
    return found


def code_of(command_module: str) -> set[str]:
    """Every landcover module a stage's command runs: its command module, the CLI entry and what they
    import, transitively (not the other stages' commands, which the CLI's parser alone loads)."""
    todo, seen = [command_module, "landcover.cli"], set()
    while todo:
        module = todo.pop()
        if module in seen or _module_file(module) is None:
            continue
        seen.add(module)
        todo += sorted(_imports(module) - seen)
    return seen


SECTIONS = {name: (info.alias or name) for name, info in Params.model_fields.items()} | {"validation": "validate"}


def params_read(modules: set[str]) -> set[str]:
    """The params sections the code reads: `<params object>.<section>` anywhere in the modules (the
    params object is named p, params or self.p / self.params by convention in this code base)."""
    read = set()
    for module in modules:
        for node in ast.walk(ast.parse(_module_file(module).read_text())):
            if isinstance(node, ast.Attribute) and node.attr in SECTIONS:
                owner = node.value
                name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) \
                    else None
                if name in ("p", "params"):
                    read.add(SECTIONS[node.attr])
    return read


def _stage_command(cmd: str) -> str:
    words = shlex.split(cmd)
    rest = words[words.index("landcover") + 1:]
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("--set", "--params") else rest[1:]
    return rest[0]


def _dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def missing_deps(stage: dict) -> tuple[list[str], list[str]]:
    """(modules of the stage's code that no dep covers, params sections it reads but does not list)."""
    package = stage_packages()[_stage_command(stage["cmd"])]
    modules = code_of(f"{package}.command")
    deps = [REPO / d for d in stage.get("deps", [])]
    uncovered = sorted(m for m in modules if not any(
        _module_file(m) == d or d in _module_file(m).parents for d in deps))
    listed = {str(p).split(".")[0] for p in stage.get("params", [])}
    return uncovered, sorted(params_read(modules) - listed)


@pytest.mark.parametrize("name", list(_dvc_stages()))
def test_each_dvc_stage_lists_the_code_and_params_its_command_runs(name) -> None:
    uncovered, unlisted = missing_deps(_dvc_stages()[name])
    assert not uncovered, f"dvc.yaml stage {name}: add these to deps: {uncovered}"
    assert not unlisted, f"dvc.yaml stage {name}: add these params sections: {unlisted}"


def test_the_deps_check_catches_a_dependency_removed_from_dvc_yaml() -> None:
    stage = dict(_dvc_stages()["evaluate"])
    stage["deps"] = [d for d in stage["deps"] if d != "src/landcover/sliding.py"]
    stage["params"] = [k for k in stage["params"] if k != "inference"]
    uncovered, unlisted = missing_deps(stage)
    assert "landcover.sliding" in uncovered and "inference" in unlisted
    # and the import closure follows function-level imports: promote's command hands evaluation in
    assert "landcover.evaluation.stage" in code_of("landcover.promotion.command")
