"""SANet (Park & Lee, CVPR 2019) from upstream PyTorch checkpoints to TensorFlow.js: stage logic."""
