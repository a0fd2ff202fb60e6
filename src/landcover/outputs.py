"""Where a command writes its side outputs (metrics, curves, decision records).

The pipeline's paths in params (`metrics/`, `plots/`) are DVC-tracked outputs: an ad-hoc run that
names its own output must not overwrite them, or `dvc status` turns dirty for a run the pipeline
never made. So a side output goes where it is asked to; else beside an explicitly named main
output; else, for a run on the params' defaults, to the pipeline's path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def side_output(asked: Path | None, main: Path | None, beside: Callable[[Path], Path | None],
                pipeline: Path | None) -> Path | None:
    if asked is not None:
        return Path(asked)
    if main is not None:
        return beside(Path(main))
    return pipeline
