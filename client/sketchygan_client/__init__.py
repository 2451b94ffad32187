"""Thin gRPC client for the SketchyGAN Triton service."""
from sketchygan_client.client import AsyncSketchClient, SketchClient
from sketchygan_client.contract import ModelInfo, noise_from_seed
from sketchygan_client.errors import DeadlineExceeded, InvalidInput, ModelNotReady, ServerUnavailable, SketchClientError
from sketchygan_client.metrics import ClientMetrics

__all__ = ["SketchClient", "AsyncSketchClient", "ModelInfo", "noise_from_seed", "ClientMetrics", "SketchClientError",
           "InvalidInput", "ServerUnavailable", "DeadlineExceeded", "ModelNotReady"]
