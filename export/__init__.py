"""Export tools: python -m export.to_onnx | export.to_trt | export.to_triton (see each module)."""
