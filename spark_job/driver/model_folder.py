"""The model folder a `fit` run writes under <output>/model and `transform --model` reads.

featurizer.json    how the images were featurized (FeaturizerRecord: image size, weights, spectrum, k, and
                   the app's classifier: its tensors and preprocessing); written last
pipeline/          the reducer: StandardScaler + PCA, a Spark ML PipelineModel
probe/             the logistic-regression probe, a Spark ML PipelineModel (absent: fewer than 2 classes)
classifier.tflite  the app's model, all of the above in one LiteRT file (spark_job/classifier_export.py)
labels.txt         its classes, one per line, in the order of its probabilities
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.ml import PipelineModel

from spark_job.contract.errors import JobInputError
from spark_job.contract.names import FEATURIZER_FILE
from spark_job.contract.records import FeaturizerRecord, RecordError
from spark_job.driver.reduce import pca_stage
from spark_job.driver.storage import Storage, join, normalize

PIPELINE_DIR = "pipeline"
PROBE_DIR = "probe"


@dataclass(frozen=True)
class FittedModel:
    featurizer: FeaturizerRecord
    reducer: PipelineModel  # StandardScaler + PCA
    probe: PipelineModel | None


def write_model_folder(
    storage: Storage,
    model_dir: str,
    fitted: FittedModel,
    export: Callable[[FeaturizerRecord], FeaturizerRecord],
) -> None:
    """The Spark ML models, then `export` (given the featurizer record, it reads the saved models and returns
    the record with what it wrote), then featurizer.json: a folder without it is unfinished."""
    fitted.reducer.write().overwrite().save(join(model_dir, PIPELINE_DIR))
    if fitted.probe is not None:
        fitted.probe.write().overwrite().save(join(model_dir, PROBE_DIR))
    storage.write_text(join(model_dir, FEATURIZER_FILE), export(fitted.featurizer).to_json())


def load_model_folder(storage: Storage, model_dir: str) -> FittedModel:
    """Everything is checked here, before the run writes anything: a JobInputError names what is wrong."""
    uri = normalize(model_dir)
    meta = join(uri, FEATURIZER_FILE)
    if not storage.exists(meta) or not storage.exists(join(uri, PIPELINE_DIR, "metadata")):
        raise JobInputError(
            f"{model_dir} is not a model folder "
            f"(expected {FEATURIZER_FILE} and {PIPELINE_DIR}/ written by `fit`)"
        )
    try:
        featurizer = FeaturizerRecord.from_json(storage.read_text(meta), meta)
    except RecordError as exc:  # bad JSON, a missing key, a wrong type, a newer version
        raise JobInputError(f"{model_dir} is not a readable model: {exc}") from exc
    try:
        reducer = PipelineModel.load(join(uri, PIPELINE_DIR))
        pca_stage(reducer)
        probe_uri = join(uri, PROBE_DIR)
        probe = PipelineModel.load(probe_uri) if storage.exists(join(probe_uri, "metadata")) else None
    except Exception as exc:  # unreadable Spark ML metadata, wrong stages
        raise JobInputError(f"{model_dir} is not a readable model: {exc}") from exc
    return FittedModel(featurizer=featurizer, reducer=reducer, probe=probe)
