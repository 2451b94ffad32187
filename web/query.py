"""The gateway's answers that are errors (`GatewayError`) and its query parameters, parsed with a message that says
what was wrong and what is expected (a 400)."""
from __future__ import annotations

MAX_SEED = 2**63 - 1
DEFAULT_GRID_SEEDS, MAX_GRID_SEEDS = 4, 8  # /v1/grid: seeds per class
MAX_VARIATIONS = 8  # /v1/variations: seeds per call


class GatewayError(Exception):
    """An answer to send as JSON: status, message and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def required_class(query) -> str:
    """The `class` query parameter, which /v1/generate and /v1/variations need."""
    cls = query.get("class")
    if not cls:
        raise GatewayError(400, "missing query parameter 'class': a class name or id (GET /v1/classes lists them)")
    return cls


def parse_seed(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or int(text) > MAX_SEED:
        raise GatewayError(400, f"seed must be an integer 0..{MAX_SEED}, got {text[:40]!r}")
    return int(text)


def parse_seed_list(text: str | None) -> list[int]:
    """/v1/variations' `seeds`: 1..MAX_VARIATIONS comma-separated seeds."""
    parts = (text or "").split(",")
    if not text or len(parts) > MAX_VARIATIONS or not all(p.isdigit() and int(p) <= MAX_SEED for p in parts):
        raise GatewayError(400, f"seeds must be 1..{MAX_VARIATIONS} comma-separated integers 0..{MAX_SEED}, got "
                                f"{(text or '')[:60]!r}")
    return [int(p) for p in parts]


def parse_grid_seeds(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_GRID_SEEDS
    if not text.isdigit() or not 1 <= int(text) <= MAX_GRID_SEEDS:
        raise GatewayError(400, f"seeds must be an integer 1..{MAX_GRID_SEEDS}, got {text[:40]!r}")
    return int(text)


def parse_version(text: str | None) -> str | None:
    """`version`: the model version every image of the call comes from (absent: the one the server serves; during a
    canary, the gateway's split decides)."""
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 18:
        raise GatewayError(400, f"version must be a model version number such as 2, got {text[:40]!r}")
    return str(int(text))
