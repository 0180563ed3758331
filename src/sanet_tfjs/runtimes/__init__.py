"""The runtimes a converted model runs in, each behind one small call: ONNX Runtime
(`onnxruntime`), TensorFlow SavedModels (`tensorflow`), TensorFlow.js in Node (`node`) and in
headless Chromium (`browser`). PyTorch, the reference, is `patch.torch_backend` and
`stylize.reference_stylize`. The stages' parity checks and the benchmark run models through
these; each imports its runtime's library only when called."""
