"""Names shared by the job, the CDK stacks and the operator CLI: the one place each is defined. No imports
beyond `typing`, so `ops` and `stacks` read them without pyspark or TensorFlow.
"""

from typing import Literal

# The data bucket's layout: input images, one folder per run id, EMR's logs.
DATA_PREFIX = "data/"
RUNS_PREFIX = "runs/"
# The features store (spark_job/driver/store.py): one Parquet dataset per featurizer key, kept across runs.
FEATURES_PREFIX = "features/"
LOGS_PREFIX = "emr-logs/"

# The two stacks, as deployed and as ops looks them up.
DATA_STACK_NAME = "FruitsData"
PIPELINE_STACK_NAME = "FruitsPipeline"

# MobileNetV2's pooled features: floats per image, and the upper bound for a fixed number of components.
FEATURE_DIM = 1280
# Sizes MobileNetV2 has ImageNet weights for (keras.applications.MobileNetV2).
ALLOWED_IMAGE_SIZES = (96, 128, 160, 192, 224)
DEFAULT_IMAGE_SIZE = 224
# Explained variance the PCA keeps when neither a target nor a number of components is given.
DEFAULT_VARIANCE = 0.95

# Where keras.applications downloads MobileNetV2 (alpha 1.0) no-top weights from: one file per input size.
# Local runs of the job download it; the CDK app downloads it once to ship as an asset (stacks/weights.py).
IMAGENET_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"


def imagenet_file_name(image_size: int) -> str:
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{image_size}_no_top.h5"


# The inference engines of the featurize stage (spark_job/workers/engines.py): recorded in the manifest and
# featurizer.json, part of the features store's key, chosen by the stacks' steps.
EngineName = Literal["litert", "tensorflow"]
ENGINES: tuple[EngineName, ...] = ("litert", "tensorflow")
DEFAULT_ENGINE: EngineName = "litert"

# The files the job (and `predict`) reads as images, by extension (case-insensitive).
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")

# What a run folder and a model folder hold: the run is finished when its manifest exists.
MANIFEST_FILE = "manifest.json"
FEATURIZER_FILE = "featurizer.json"
# The app's model in a model folder (fit writes them, `predict` and `python -m ops results` read them).
CLASSIFIER_FILE = "classifier.tflite"
LABELS_FILE = "labels.txt"

# ActionOnFailure of both EMR steps (CloudFormation documents CANCEL_AND_WAIT and CONTINUE): a failed `fit`
# cancels `transform`, which CONTINUE would run on a model that does not exist. The cluster then has no step
# left and terminates (KeepJobFlowAliveWhenNoSteps=false; else the idle timeout of AutoTerminationPolicy).
STEP_ACTION_ON_FAILURE = "CANCEL_AND_WAIT"
