"""SANet (Park & Lee, CVPR 2019) from upstream PyTorch checkpoints to TensorFlow.js: stage logic."""

import logging
import os
import warnings

from .logs import native_logs_wanted

# Start-up noise of the libraries the stages import, none of it a failure (failures arrive as
# Python exceptions with their message): TensorFlow's C++ log (the rest is filtered per stage,
# sanet_tfjs.logs), tensorflow_decision_forests' greeting (tensorflowjs imports it; under a
# captured stdout it also tries IPython, not installed), tensorflow_hub's pkg_resources
# deprecation, and TensorFlow's Python notes on saving models (absl INFO: renamed inputs,
# untraced functions, sharding durations; a filter, because onnx-tf's pooling handler sets
# absl's verbosity to INFO mid-conversion). SANET_TF_LOGS=1 keeps TensorFlow's logs.
if not native_logs_wanted():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").addFilter(lambda record: record.levelno >= logging.WARNING)
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
