"""Export: checkpoint -> ONNX (parity-checked) -> FP16 check -> TensorRT FP16, and Triton model folders."""
