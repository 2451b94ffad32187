"""Thin gRPC client for the SketchyGAN Triton service."""
from sketchygan_client.async_client import AsyncSketchClient
from sketchygan_client.client import SketchClient
from sketchygan_client.contract import ModelInfo, Receipt, noise_from_seed, sketch_digest
from sketchygan_client.errors import (
                                      DeadlineExceeded,
                                      InvalidInput,
                                      ModelNotReady,
                                      ServerUnavailable,
                                      SketchClientError,
                                      VersionNotServed,
)
from sketchygan_client.metrics import ClientMetrics

__all__ = ["SketchClient", "AsyncSketchClient", "ModelInfo", "Receipt", "noise_from_seed", "sketch_digest",
           "ClientMetrics", "SketchClientError",
           "InvalidInput", "ServerUnavailable", "DeadlineExceeded", "ModelNotReady", "VersionNotServed"]
