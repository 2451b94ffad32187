"""What runs beside tritonserver, torch-free: the wire contract, config.pbtxt writing and parsing, the CPU runtimes
(ONNX Runtime, OpenVINO), the served `model.py` and the drain-barrier model. export/ writes model folders through it;
serving/ and loadtest/ stand on it without the training stack."""
