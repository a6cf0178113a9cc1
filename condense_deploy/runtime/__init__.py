"""onnxruntime + numpy only (never torch, never onnx): sessions, timing, bench, machine facts,
remote runs and reports. Everything a board with the runtime install needs."""
