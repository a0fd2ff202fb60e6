"""Figure 5: synthetic generation rate (megapixels per second of tile area, all four seasons, label
and GeoTIFF writing included) and the time of a no-op `dvc repro` in the repository.

The generator renders fresh tiles into a scratch folder (deleted afterwards). `dvc repro` is only
timed when `dvc status` says the pipeline is up to date (a no-op); otherwise the stages DVC would
run are recorded instead (timing them would run the pipeline).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as c

BUSY_WAIT_S = 300  # another `dvc repro` holding the repository's lock: wait this long for it


def _dvc(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run dvc from this interpreter's environment; while another dvc process holds the lock,
    wait (its run is not ours to time) up to BUSY_WAIT_S."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    exe = bin_dir / "dvc"
    cmd = [str(exe) if exe.exists() else "dvc", *args]
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        proc = subprocess.run(cmd, cwd=c.REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0 or "is busy" not in proc.stderr or time.monotonic() > deadline:
            return proc
        c.log("  dvc: the repository is locked by another dvc process; waiting")
        time.sleep(10)


def synth_rate() -> dict:
    from landcover.synth.generate import SynthOptions, generate

    size = 512 if c.quick() else 1024
    tiles = 2 if c.quick() else 3
    rates = []
    for rep in range(2):
        out = c.RESULTS / "work" / f"synth_{rep}"
        shutil.rmtree(out, ignore_errors=True)
        seconds = c.timed(lambda out=out, rep=rep: generate(
            out, SynthOptions(cities=tiles, tiles_per_city=1, size=size, seed=100 + rep)))
        shutil.rmtree(out, ignore_errors=True)
        rates.append(tiles * size * size / 1e6 / seconds)
        c.log(f"  synth: {tiles} tiles of {size} px in {seconds:.2f} s")
    return {"synth_mpx_per_s": c.rnd(c.median(rates), 3), "synth_runs_mpx_per_s": [c.rnd(r, 3) for r in rates],
            "synth_tile_px": size, "synth_tiles_per_run": tiles,
            "synth_s_per_2048_tile": c.rnd(2048 * 2048 / 1e6 / c.median(rates), 1)}


def dvc_noop() -> dict:
    if not (c.REPO / "dvc.yaml").is_file():
        return {"dvc": "no dvc.yaml in the repository"}
    _dvc(["status", "--json"])  # waits out another dvc run; then time the next call alone
    t0 = time.perf_counter()
    status = _dvc(["status", "--json"])
    status_s = time.perf_counter() - t0
    if status.returncode != 0:
        return {"dvc": "dvc status failed", "dvc_status_stderr": status.stderr.strip()[-500:]}
    try:
        stale = json.loads(status.stdout or "{}")
    except json.JSONDecodeError:
        stale = {"unparsed": status.stdout.strip()[-500:]}
    result: dict = {"dvc_status_s": c.rnd(status_s, 2)}
    if stale:
        result.update({"dvc_repro_noop_s": None, "dvc_up_to_date": False,
                       "dvc_stages_to_run": sorted(stale),
                       "dvc_note": "pipeline not up to date: `dvc repro` would run these stages, so it was "
                                   "not timed (run `dvc repro` once, then `make bench` again)"})
        return result
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        repro = _dvc(["repro"])
        runs.append(time.perf_counter() - t0)
        if repro.returncode != 0:
            return {**result, "dvc": "dvc repro failed", "dvc_repro_stderr": repro.stderr.strip()[-500:]}
    result.update({"dvc_repro_noop_s": c.rnd(c.median(runs), 2), "dvc_up_to_date": True,
                   "dvc_repro_runs_s": [c.rnd(r, 2) for r in runs]})
    return result


def main() -> dict:
    c.log("figure 5: synthetic generation rate and dvc repro no-op")
    rate = synth_rate()
    dvc = dvc_noop()
    return c.emit("synth_and_dvc", {"ratio": None, "target": "report only", "met": None, **rate, **dvc})


if __name__ == "__main__":
    main()
    sys.exit(0)
