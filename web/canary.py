"""`python -m web.canary --url http://127.0.0.1:8080` (`make canary-report`): the canary next to the stable version,
from the gateway's per-version metrics — images, mean class confidence (the scorer's), and call latency p50/p95 —
so that an operator can decide to promote (`python -m serving promote`) or roll back."""
from __future__ import annotations

import argparse
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from triton_repo.tables import md_table


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
