"""The train stage: one implementation behind `landcover train`, the DVC stage and the flow."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader

from landcover.candidate import write_candidate
from landcover.config import Params
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json
from landcover.lineage import data_version_of, file_hash, git_commit, params_hash
from landcover.model.bundle import BundleMeta, ModelBundle
from landcover.model.network import check_arch_and_encoder
from landcover.model.normalization import NormStats, compute_norm_stats
from landcover.model.pyfunc import log_bundle_model
from landcover.outputs import side_output
from landcover.plots import confusion_matrix_figure, overlays_figure, per_class_bars
from landcover.splitfile import read_split
from landcover.tracking import connect
from landcover.training.calibrate import calibrate
from landcover.training.callbacks import CurvesCSV, LastCheckpoint, RankReport, SameResume
from landcover.training.data import (
    IGNORE_INDEX,
    RING_SLOTS,
    BatchRing,
    CropSampler,
    TrainCrops,
    ValCrops,
    collate,
    index_tiles,
)
from landcover.training.sources import GeoTiffSource, StoreSource
from landcover.training.task import SegmentationTask
from landcover.trainstore.layout import PackedStore
from landcover.trainstore.shards import StoreError

log = logging.getLogger(__name__)
RESUME_FILE = "resume.json"


@dataclass
class TrainResult:
    run_id: str
    model_uri: str
    out_dir: Path
    metrics: dict[str, float]
    metrics_path: Path | None = None
    curves_path: Path | None = None
    rank: int = 0  # under DDP, the other ranks return an empty result


def trainer_settings(p: Params) -> dict:
    """accelerator=auto; bf16 mixed precision on CUDA, 32-bit on CPU (params.yaml keys)."""
    cuda = torch.cuda.is_available() and p.train.accelerator in ("auto", "gpu", "cuda")
    return dict(
        accelerator=p.train.accelerator,
        devices=p.train.devices,
        strategy=p.train.strategy,
        num_nodes=p.train.num_nodes,
        precision=p.train.precision_gpu if cuda else p.train.precision_cpu,
    )


@dataclass
class TrainingData:
    """The crops of one run and where they came from (store or GeoTIFFs), for lineage."""

    train: TrainCrops
    val: ValCrops
    norm: NormStats
    data_version: str
    source: str
    train_tiles: int
    val_tiles: int


def _sources(p: Params, data_root: Path, split_file: Path, store: Path | str | None) -> tuple:
    """(train source, val source, norm stats, data version, description) for train.input."""
    if p.train.input == "store":
        url = str(store or p.pack.out)
        try:
            packed = PackedStore(url)
        except StoreError as exc:
            raise LandcoverError(f"{exc} (train.input is 'store': run `landcover pack`, or set train.input: geotiff)"
                                 ) from exc
        if packed.meta.split_hash != file_hash(split_file):
            raise LandcoverError(f"{url}: packed from another split than {split_file}: rerun `landcover pack`")
        current = data_version_of(data_root)
        if "untracked" not in (current, packed.meta.data_version) and packed.meta.data_version != current:
            raise LandcoverError(f"{url}: packed from data version {packed.meta.data_version}, {data_root} is "
                                 f"{current}: rerun `landcover pack`")
        return (StoreSource(packed, "train"), StoreSource(packed, "val"), NormStats.from_dict(packed.meta.norm),
                packed.meta.data_version, f"store {url}")
    train_tiles = read_split(split_file, data_root, "train")
    norm = compute_norm_stats(train_tiles) if train_tiles else None
    return (GeoTiffSource(train_tiles), GeoTiffSource(read_split(split_file, data_root, "val")), norm,
            data_version_of(data_root), f"geotiff {data_root}")


def training_data(p: Params, data_root: Path, split_file: Path, store: Path | str | None = None) -> TrainingData:
    t = p.train
    train_src, val_src, norm, version, described = _sources(p, data_root, split_file, store)
    if not train_src.keys():
        raise LandcoverError(f"{split_file}: the training split is empty")
    if not val_src.keys():
        raise LandcoverError(f"{split_file}: the validation split is empty")
    h, w = train_src.shape(train_src.keys()[0])
    if t.crop_size > min(h, w):
        raise LandcoverError(f"params train.crop_size: {t.crop_size} is larger than the tiles ({h}x{w})")
    if t.crop_size % 32:
        raise LandcoverError(f"params train.crop_size: {t.crop_size} must be a multiple of 32")
    train_infos = index_tiles(train_src, t.crop_size, t.rare_classes, seed=t.seed)
    val_infos = index_tiles(val_src, t.crop_size, (), seed=t.seed)
    return TrainingData(
        TrainCrops(train_infos, train_src, t.crop_size, t.crops_per_tile, t.rare_class_crop_share, t.season_dropout,
                   seed=t.seed),
        ValCrops(val_infos, val_src, t.crop_size, t.val_crops_per_tile), norm, version, described,
        len(train_infos), len(val_infos))


def loaders(p: Params, data: TrainingData) -> tuple[DataLoader, DataLoader]:
    """Our samplers, not Lightning's DistributedSampler: per-epoch seeds and disjoint rank shares."""
    t = p.train
    kw = dict(batch_size=t.batch_size, num_workers=t.num_workers, pin_memory=t.pin_memory,
              persistent_workers=t.num_workers > 0, collate_fn=collate)
    # batches recycled in turn: the consumer holds two, each worker has up to prefetch_factor (2) queued
    data.train.ring, data.val.ring = BatchRing(RING_SLOTS), BatchRing(RING_SLOTS)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun and SLURM before any process group
    return (DataLoader(data.train, sampler=CropSampler(len(data.train), t.seed),
                       drop_last=len(data.train) // world > t.batch_size, **kw),
            DataLoader(data.val, sampler=CropSampler(len(data.val), t.seed, shuffle=False), **kw))


def run_train(p: Params, data_root: Path, split_file: Path, out_dir: Path | None = None,
              fast_dev_run: bool = False, checkpoints: Path | None = None, metrics_path: Path | None = None,
              curves_path: Path | None = None, store: Path | str | None = None) -> TrainResult:
    """Train, calibrate and log one candidate. A run given its own `out_dir` writes its metrics and
    curves inside it unless told otherwise; only a run on the params' defaults writes the pipeline's.

    Under DDP every rank runs this; rank zero alone writes files and talks to MLflow."""
    t = p.train
    zero = rank_zero_only.rank == 0
    metrics_path = side_output(metrics_path, out_dir, lambda o: o / "train_metrics.json", t.metrics)
    curves_path = side_output(curves_path, out_dir, lambda o: o / "train_curves.csv", t.curves)
    out_dir = Path(out_dir or t.out)
    ckpt_dir = Path(checkpoints or out_dir.parent / f"{out_dir.name}-checkpoints")
    check_arch_and_encoder(t.arch, t.encoder)
    if zero:  # fail fast before any work; other ranks never talk to MLflow (two creating one SQLite store race)
        connect(p.tracking_uri(), p.mlflow.experiment)

    weights = None  # pretrained encoder weights: resolved (downloaded or found in the cache) before any work
    if t.encoder_weights and t.encoder_weights != "imagenet":
        from landcover.model.pretrained import resolve

        weights = resolve(t.encoder_weights)
    pl.seed_everything(t.seed, workers=True)
    data = training_data(p, data_root, split_file, store)
    norm = data.norm
    if weights is not None:  # pixels reach the encoder as its weights were trained to see them
        from landcover.model.pretrained import channel_norm

        norm = NormStats(*channel_norm(weights, norm.mean, norm.std))
    out_dir.mkdir(parents=True, exist_ok=True)
    if zero:
        norm.save(out_dir / "norm_stats.json")
    train_dl, val_dl = loaders(p, data)

    # resume: an unfinished run with a last checkpoint and the same params continues in the same
    # MLflow run. The state lives beside the checkpoints, outside the DVC output (which DVC clears).
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state_path = ckpt_dir / RESUME_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    last_ckpt = ckpt_dir / "last.ckpt"
    phash = params_hash({"train": t.model_dump(mode="json"), "split": file_hash(split_file)})
    resume = (state.get("status") == "running" and state.get("params_hash") == phash
              and last_ckpt.exists() and not fast_dev_run)
    if zero:
        for partial in ckpt_dir.glob(".*.tmp"):  # a checkpoint being written when the run was killed
            partial.unlink()
        if not resume:
            for stale in ckpt_dir.glob("*.ckpt"):
                stale.unlink()
    run_id = state["run_id"] if resume else None

    logger = MLFlowLogger(experiment_name=p.mlflow.experiment, tracking_uri=p.tracking_uri(),
                          run_id=run_id, log_model=False)
    run_id = logger.run_id  # None on other ranks: Lightning's MLflow logger talks from rank zero
    client = logger.experiment
    if zero:
        atomic_write_json(state_path, {"run_id": run_id, "status": "running", "params_hash": phash})
    if zero and not resume:
        lineage = {
            "git_commit": git_commit(), "data_version": data.data_version,
            "split_hash": file_hash(split_file), "params_hash": params_hash(t.model_dump(mode="json")),
            "training_input": data.source,
            "encoder_weights": weights.source if weights is not None else (t.encoder_weights or "random"),
            "fine_tuning": f"encoder frozen {t.freeze_encoder_epochs} epochs, lr x {t.encoder_lr_multiplier}",
        }
        for k, v in lineage.items():
            client.set_tag(run_id, k, v)
        logger.log_hyperparams({**t.model_dump(mode="json"), "train_tiles": data.train_tiles,
                                "val_tiles": data.val_tiles})
        client.log_artifact(run_id, str(out_dir / "norm_stats.json"))

    task = SegmentationTask(t.arch, t.encoder, t.encoder_depth, t.encoder_weights, t.lr, t.weight_decay,
                            t.dice_weight, list(t.class_weights) if t.class_weights else None, t.epochs,
                            norm_mean=norm.mean.tolist(), norm_std=norm.std.tolist(),
                            freeze_encoder_epochs=t.freeze_encoder_epochs,
                            encoder_lr_multiplier=t.encoder_lr_multiplier, weights=weights)
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_miou", mode="max")
    curves = CurvesCSV(curves_path if not fast_dev_run else ckpt_dir / "curves.csv")
    trainer = pl.Trainer(
        max_epochs=t.epochs, logger=logger, log_every_n_steps=min(t.log_every_n_steps, max(len(train_dl), 1)),
        callbacks=[best, EarlyStopping("val_miou", mode="max", patience=t.early_stopping_patience),
                   LearningRateMonitor("step"), curves, LastCheckpoint(last_ckpt),
                   RankReport(ckpt_dir, train_dl.sampler), SameResume(resume, ckpt_dir)],
        fast_dev_run=fast_dev_run, enable_model_summary=False, deterministic=False,
        use_distributed_sampler=False,  # CropSampler shards by rank itself
        enable_progress_bar=sys.stderr.isatty(),  # logs and Prefect get one line per epoch instead
        **trainer_settings(p),
    )
    # weights-only: the resume state is plain tensors and containers, and a checkpoint is never code
    trainer.fit(task, train_dl, val_dl, ckpt_path=str(last_ckpt) if resume else None, weights_only=True)
    if not trainer.is_global_zero:  # rank zero calibrates, saves and logs the one model
        return TrainResult("", "", out_dir, {}, None, None, rank=trainer.global_rank)

    # the model to ship: best checkpoint (or final weights in a smoke run)
    if best.best_model_path and not fast_dev_run:
        ckpt = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
        task.load_state_dict(ckpt["state_dict"])
    # confidence users can trust: one temperature (changes no prediction), cross-fitted on the
    # validation tiles and kept only where it lowers the held-out ECE
    calibration = calibrate(task.cpu(), data.val)
    for k, v in calibration.items():
        client.log_metric(run_id, f"calibration_{k}", float(v))
    meta = BundleMeta(t.arch, t.encoder, t.encoder_depth, norm.to_dict(),
                      {int(k): int(v) for k, v in p.fuel.crosswalk.items()}, p.fuel.crosswalk_version,
                      temperature=calibration["temperature"])
    bundle = ModelBundle(task.network.cpu().eval(), meta)
    bundle_dir = out_dir / "bundle"
    bundle.save(bundle_dir)

    metrics = _final_validation(task, data.val, client, run_id, out_dir)
    metrics |= {"calibration_temperature": calibration["temperature"],
                "calibration_kept": calibration["kept"],
                "calibration_temperature_fitted": calibration["temperature_fitted"],
                "val_ece_uncalibrated": calibration["val_ece_uncalibrated"],
                "val_ece_calibrated": calibration["val_ece_calibrated"]}
    with mlflow.start_run(run_id=run_id):
        info = log_bundle_model(bundle_dir)
        if Path(curves.path).exists():
            mlflow.log_artifact(str(curves.path), "curves")
    atomic_write_json(state_path, {"run_id": run_id, "status": "finished", "params_hash": phash})
    write_candidate(out_dir, run_id, info.model_uri)
    if not fast_dev_run:
        atomic_write_json(metrics_path, metrics)
    client.set_terminated(run_id, "FINISHED")
    return TrainResult(run_id, info.model_uri, out_dir, metrics,
                       None if fast_dev_run else metrics_path, Path(curves.path))


def _final_validation(task: SegmentationTask, val_ds: ValCrops, client, run_id: str,
                      out_dir: Path) -> dict[str, float]:
    """Validation figures of the shipped weights, plus the confusion matrix and overlays."""
    from landcover.classes import CLASS_NAMES
    from landcover.metrics import confusion_counts, scores_from_confusion

    task.eval()
    cm = np.zeros((10, 10), dtype=np.int64)
    samples = []
    with torch.inference_mode():
        for i in range(len(val_ds)):
            x, y = task.prepare(val_ds.__getitems__([i]))
            pred = task(x).argmax(1)[0].numpy()
            cm += confusion_counts(pred, y[0].numpy(), ignore_index=IGNORE_INDEX)
            if len(samples) < 4 and i % max(1, len(val_ds) // 4) == 0:
                stack, label = val_ds.raw(i)
                samples.append((stack, label, np.where(label > 0, pred + 1, 0)))
    scores = scores_from_confusion(cm)
    figures = out_dir / "figures"
    confusion_matrix_figure(cm, figures / "val_confusion_matrix.png", "Validation confusion matrix")
    per_class_bars(dict(zip(CLASS_NAMES, scores["iou"], strict=True)), figures / "val_iou.png", "Validation IoU")
    overlays_figure(samples, figures / "val_overlays.png")
    for f in sorted(figures.glob("*.png")):
        client.log_artifact(run_id, str(f), "figures")
    metrics = {"val_miou": scores["miou"], "val_accuracy": scores["accuracy"],
               **{f"val_iou_{n.replace(' ', '_')}": v for n, v in zip(CLASS_NAMES, scores["iou"], strict=True)}}
    for k, v in metrics.items():
        client.log_metric(run_id, f"final_{k}", v)
    return {k: round(float(v), 4) for k, v in metrics.items()}
