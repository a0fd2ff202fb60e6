"""MLflow "model from code" entry: logged as a file, so no pickled Python object is stored."""

import mlflow

from landcover.model.pyfunc import LandcoverModel

mlflow.models.set_model(LandcoverModel())
