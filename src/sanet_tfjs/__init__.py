"""SANet (Park & Lee, CVPR 2019) from upstream PyTorch checkpoints to TensorFlow.js: stage logic."""

import os

# TensorFlow's C++ start-up log (CUDA probing on machines without a GPU, absl notices) would
# bury the stages' own output; failures still arrive as Python exceptions with their message.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
