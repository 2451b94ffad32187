"""A canary at the gateway. `CanarySplit`: which model version a call goes to while the server serves two (the
operator's share to the newer one). `python -m web.canary --url http://127.0.0.1:8080` (`make canary-report`): the
canary next to the stable version, from the gateway's per-version metrics — images, mean class confidence (the
scorer's), and call latency p50/p95 — so that an operator can decide to promote (`python -m serving promote`) or
roll back."""
from __future__ import annotations

import argparse
import random
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from triton_repo.tables import md_table
from web.query import GatewayError

VERSIONS_TTL_S = 1.0  # how stale the served versions a canary split reads may be


class CanarySplit:
    """Which model version a gateway call goes to: the caller's `version`; while two versions are served and
    `percent` > 0, the newer one for that share of the calls and the older for the rest, each pinned by version (Triton
    itself gives every call that names none to the newest); else none. `served_versions()`: the versions the server
    serves now, oldest first (read at most every VERSIONS_TTL_S)."""

    def __init__(self, percent: float, served_versions) -> None:
        self.percent, self._served_versions = percent, served_versions
        self._versions: list[str] = []
        self._read_at = -VERSIONS_TTL_S

    async def pick(self, explicit: str | None) -> str | None:
        if explicit is not None or not self.percent:
            return explicit
        if time.monotonic() - self._read_at >= VERSIONS_TTL_S:
            self._versions = await self._served_versions()
            self._read_at = time.monotonic()
        if len(self._versions) < 2:
            return None
        return self._versions[-1] if random.random() * 100 < self.percent else self._versions[-2]

    async def run(self, explicit: str | None, work):
        """`work(version)` with the pick. A pick whose version stopped being served meanwhile (a promote or a
        rollback: 404) is done again with no version (Triton's newest), and the served versions are read again at
        the next call."""
        version = await self.pick(explicit)
        try:
            return await work(version)
        except GatewayError as e:
            if explicit is not None or version is None or e.status != 404:
                raise
            self._read_at = -VERSIONS_TTL_S
            return await work(None)


def per_version(text: str) -> dict[str, dict]:
    """{version: images, mean confidence, p50/p95 latency (ms, bucket upper bounds)} from the gateway's /metrics."""
    rows: dict[str, dict] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            v = s.labels.get("version")
            if v is None:
                continue
            row = rows.setdefault(v, {"images": 0, "confidence_sum": 0.0, "confidence_count": 0})
            if s.name == "sketchygan_gateway_images_total":
                row["images"] = int(s.value)
            elif s.name == "sketchygan_gateway_class_confidence_sum":
                row["confidence_sum"] = s.value
            elif s.name == "sketchygan_gateway_class_confidence_count":
                row["confidence_count"] = int(s.value)
            elif s.name == "sketchygan_gateway_generate_seconds_bucket":
                buckets.setdefault(v, []).append((float(s.labels["le"]), s.value))
    out = {}
    for v, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
        n = row["confidence_count"]
        out[v] = {"images": row["images"], "mean_class_confidence": round(row["confidence_sum"] / n, 4) if n else None,
                  "scored": n, "p50_ms": _quantile(buckets.get(v, []), 0.5),
                  "p95_ms": _quantile(buckets.get(v, []), 0.95)}
    return out


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The smallest bucket bound holding fraction q of the observations (ms), from a cumulative histogram."""
    cumulative = sorted(cumulative)
    total = cumulative[-1][1] if cumulative else 0
    if not total:
        return None
    bound = next(le for le, count in cumulative if count >= q * total)
    return None if bound == float("inf") else round(1e3 * bound, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m web.canary", description=__doc__)
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    ap.add_argument("--api-key-file", help="the gateway's API key, when it asks for one")
    args = ap.parse_args(argv)
    from web.auth import read_key
    try:
        key = read_key(args.api_key_file)
        req = urllib.request.Request(args.url.rstrip("/") + "/metrics",
                                     headers={"Authorization": f"Bearer {key}"} if key else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            rows = per_version(r.read().decode())
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print("no images answered through this gateway yet")
        return 0
    print("\n".join(md_table(["version", "images", "scored", "mean class confidence", "p50 ms", "p95 ms"],
                             [[v, r["images"], r["scored"], r["mean_class_confidence"], r["p50_ms"], r["p95_ms"]]
                              for v, r in rows.items()])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
