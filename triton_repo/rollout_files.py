"""The files a staged model version carries from `python -m export stage` to the supervisor that rolls it out, and
the contract fields a new version must share with the running one (what callers rely on)."""
from __future__ import annotations

from triton_repo.contract import CHECKPOINT_FILE

# what a CPU version folder holds (triton_repo/folders.py)
VERSION_FILES = ("model.onnx", "model.py", "cpu_sessions.py", CHECKPOINT_FILE)
PARITY_FILE = "parity.npz"  # reference inputs and the images the staged ONNX gives for them in process
CONTRACT_FILE = "contract.json"  # the staged model's contract fields, compared with the running one's
CONTRACT_FIELDS = ("resolution", "image_resolution", "noise_dim", "class_names", "styles")


def contract_fields(contract) -> dict:
    """A Contract's fields that a new version must share with the running one."""
    return {"resolution": contract.resolution, "image_resolution": contract.image_resolution,
            "noise_dim": contract.noise_dim, "class_names": list(contract.class_names),
            "styles": list(contract.styles)}


def contract_mismatch(running: dict, new: dict) -> str | None:
    """The first contract field that differs, said with both values, or None when they agree."""
    for k in CONTRACT_FIELDS:
        if running.get(k) != new.get(k):
            return f"contract field {k!r} differs: the running model has {running.get(k)!r}, the new one {new.get(k)!r}"
    return None
