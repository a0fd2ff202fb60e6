"""The MLflow model: `mlflow.pyfunc.load_model(uri).predict(x)` with x a (N, 40, H, W) float array
of raw reflectances x 10000 returns (N, 10, H, W) class probabilities."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np

from landcover.model.bundle import ModelBundle

BUNDLE_ARTIFACT = "bundle"


class LandcoverModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        if isinstance(model_input, dict):  # a named tensor (e.g. from a serving payload)
            if len(model_input) != 1:
                raise ValueError(f"expected one input tensor, got {sorted(model_input)}")
            model_input = next(iter(model_input.values()))
        x = np.asarray(model_input, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 40:
            raise ValueError(f"expected (N, 40, H, W) reflectances, got shape {x.shape}")
        n, _, h, w = x.shape
        ph, pw = (-h) % 32, (-w) % 32  # the encoder needs multiples of 32
        xp = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 32 else "edge")
        return self.bundle.predict_proba(xp)[:, :, :h, :w]


def log_bundle_model(bundle_dir: Path, name: str = "model") -> mlflow.models.model.ModelInfo:
    """Log the bundle as a pyfunc model (with signature and input example) in the active run."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    example = np.full((1, 40, 32, 32), 1000.0, dtype=np.float32)
    # any batch size and window size: (N, 40, H, W) in, (N, 10, H, W) out
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 40, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 10, -1, -1))]),
    )
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__).with_name("mlflow_model_code.py")),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=["landcover", "torch", "segmentation-models-pytorch", "safetensors", "numpy"],
    )
