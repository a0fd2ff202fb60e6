"""`landcover assess`: accuracy and area estimates of a map from reference points, or (`--design`) a
stratified random sample of the map to label (docs/accuracy.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.assessment.stage import DESIGN, SUMMARY, run_assess, run_design

    if args.design:
        points, design = run_design(params, args.map, args.out, target_se=args.target_se, minimum=args.min_per_stratum,
                                    seed=args.seed)
        print(f"design: {design.n} points in {len(design.allocation)} strata (target standard error "
              f"{design.target_se} of the overall accuracy) -> {points}; strata sizes {points.parent / DESIGN}")
        for code, n in design.allocation.items():
            print(f"  stratum {code}: {n} points of {design.strata[code]} pixels")
        print("label each point's `reference` (a class code), then: landcover assess --map ... --points "
              f"{points} --design-file {points.parent / DESIGN}")
        return 0
    if args.points is None:
        raise SystemExit("landcover assess: --points FILE is needed (or --design to draw a sample)")
    result = run_assess(params, args.map, args.points, args.out, attribute=args.attribute, preset=args.preset,
                        design_file=args.design_file, log=not args.no_mlflow)
    report = result.report
    o = report["overall"]["overall_accuracy"]
    print(f"assess: overall accuracy {o['value']:.3f} ± {o['ci95']:.3f} (95 %) from {report['points']['used']} points "
          f"({report['design']}); left out: {report['points']['outside']} outside the map, "
          f"{report['points']['nodata']} on nodata, {report['points']['not_comparable']} not comparable")
    print(f"report: {result.out / SUMMARY}" + (f"; MLflow run {result.run_id}" if result.run_id else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assess", help="accuracy and error-adjusted areas from reference points (or --design a sample)",
                       description="Sample a map (batch-inference tiles, area maps, a region's EEA cells or a change "
                       "folder) at reference points (any vector, a CSV with coordinates, LUCAS) and estimate the "
                       "confusion matrix, overall, user's and producer's accuracy and each class's error-adjusted "
                       "area with 95 %% confidence intervals (Olofsson et al. 2014); or --design a stratified random "
                       "sample to label.")
    p.add_argument("--map", type=Path, required=True, help="folder of the map (landcover.tif or transition.tif files)")
    p.add_argument("--points", type=Path, help="reference points: vector file or CSV with coordinates")
    p.add_argument("--out", type=Path, help="report folder (params assess.out)")
    p.add_argument("--attribute", help="the reference class attribute (change maps: BEFORE,AFTER)")
    p.add_argument("--preset", choices=["lucas"], help="read the points as Eurostat publishes LUCAS")
    p.add_argument("--design-file", type=Path, help="design.json of the sample (strata sizes); default: counted "
                   "on the map when the points have a stratum attribute")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the assessment to MLflow")
    p.add_argument("--design", action="store_true", help="draw a stratified random sample of the map instead")
    p.add_argument("--target-se", type=float, help="with --design: standard error of the overall accuracy aimed at")
    p.add_argument("--min-per-stratum", type=int, help="with --design: the fewest points of a stratum")
    p.add_argument("--seed", type=int, help="with --design: random seed")
    p.set_defaults(handler=_run)
