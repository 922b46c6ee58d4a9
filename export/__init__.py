"""Export tools: python -m export.to_onnx | export.to_trt | export.to_triton (see each module).

What they share: :mod:`export.parity` (the check against a reference runtime before anything is
written) with its inputs from :mod:`export.probe_inputs`, :mod:`export.fp16_graph` (fp16
surgery on ONNX graphs) and :mod:`export.output` (directory replacement, versions, logging).
"""
