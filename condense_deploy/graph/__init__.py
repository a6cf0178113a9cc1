"""ONNX graph work, onnx + numpy only (never torch): the GraphView, the rewrite passes, the
optimize recipes, int8 quantization and the ``inspect`` summary of a .onnx file. onnxruntime is
used (through ``runtime.sessions``) only to time and check rewritten graphs."""
