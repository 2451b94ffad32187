"""`sketchygan-client`: generate a photo from a sketch, many from a manifest or folder (batch), list classes, check
health.

Exit codes: 0 ok, 2 invalid input, 3 server unavailable / model not ready, 4 deadline exceeded, 1 other errors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sketchygan_client.batch import IN_FLIGHT
from sketchygan_client.client import SketchClient
from sketchygan_client.contract import DEFAULT_URL
from sketchygan_client.errors import DeadlineExceeded, InvalidInput, ModelNotReady, ServerUnavailable, SketchClientError
from sketchygan_client.images import to_image

EXIT = {InvalidInput: 2, ServerUnavailable: 3, ModelNotReady: 3, DeadlineExceeded: 4}


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The connection options, accepted before or after the subcommand (after it they only override)."""
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    parser.add_argument("--url", default=d(DEFAULT_URL),
                        help="gRPC target: host:port, dns:///name:port or ipv4:a:p,b:p; calls are balanced over "
                             f"every address (default {DEFAULT_URL})")
    parser.add_argument("--timeout", type=float, default=d(30.0), help="per-call deadline in seconds (default 30)")
    parser.add_argument("--retries", type=int, default=d(None),
                        help="at most this many retries of 'not executed' answers (default: until the deadline)")
    parser.add_argument("--tls-ca", default=d(None), help="PEM root certificate: connect with TLS")
    parser.add_argument("--tls-cert", default=d(None),
                        help="PEM client certificate presented to a server that requires one (mutual TLS)")
    parser.add_argument("--tls-key", default=d(None), help="PEM private key of --tls-cert")
    parser.add_argument("--model-version", default=d(None),
                        help="send every call to this model version (default: the newest the server serves)")


def _serving_summary(plan: dict | None, reserve_s: float | None) -> dict | None:
    """The server's calibrated limits as `health` shows them, with the compute reserve it publishes (None: the server
    publishes no calibration)."""
    if not plan:
        return None
    keys = ("runtime", "precision", "instances", "threads", "batch_limit", "max_queue_size", "budget_s", "rate_rps",
            "source")
    out = {k: plan.get(k) for k in keys}
    # what a request that names no timeout may wait (a full queue's work), and what a caller keeps out of its own
    # timeout for compute (docs/reliability.md: send timeout = deadline - compute reserve)
    out["default_queue_timeout_s"] = round(plan.get("queue_timeout_us", 0) / 1e6, 1)
    out["compute_reserve_ms"] = round(1e3 * reserve_s, 1) if reserve_s is not None else None
    out["batch_cost_ms"] = {"per_image": round(1e3 * plan.get("per_image_s", 0), 3),
                            "overhead": round(1e3 * plan.get("overhead_s", 0), 3)}
    machine = plan.get("machine") or {}
    out["machine"] = {k: machine.get(k) for k in ("cpu_model", "isa", "usable_cores")}
    return out


def _batch(client: SketchClient, args: argparse.Namespace) -> int:
    """`batch`: exit 0 when every image was made or was there already; else the worst row's kind of failure."""
    from sketchygan_client.batch import read_folder, read_manifest, run_batch
    if args.seeds < 1 or args.in_flight < 1:
        raise InvalidInput(f"--seeds and --in-flight must be >= 1, got --seeds {args.seeds} --in-flight "
                           f"{args.in_flight}")
    source, out = Path(args.source), Path(args.output)
    if source.is_dir():
        if args.cls is None:
            raise InvalidInput(f"{source} is a folder: give the class of its sketches with --class")
        items, errors = read_folder(source, args.cls, args.seeds, args.style), []
    elif source.is_file():
        if args.cls is not None:
            raise InvalidInput("--class is for a folder of sketches; a manifest names each row's class")
        items, errors = read_manifest(source, args.seeds, args.style)
    else:
        raise InvalidInput(f"{source} is neither a manifest file nor a folder")
    out.mkdir(parents=True, exist_ok=True)
    result = run_batch(client, items, out, source, args.in_flight)
    errors += result.errors
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    rate = result.written / result.seconds if result.seconds and result.written else 0.0
    print(f"{out}: {result.written} written, {result.skipped} already there" +
          (" (nothing new to write)" if not result.written and result.skipped else "") +
          (f", {len(errors)} failed" if errors else "") + (f"; {rate:.1f} images/s" if rate else ""))
    return 2 if errors else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sketchygan-client", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(ap, defaults=True)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="sketch image -> photo")
    g.add_argument("sketch", help="sketch image (PNG/JPEG, any size; dark strokes on white)")
    g.add_argument("--class", dest="cls", required=True, help="class name or id (see `classes`)")
    g.add_argument("--seed", type=int, default=0, help="noise seed: same sketch+class+seed+style = same image")
    g.add_argument("--style", default=None, help="output style, e.g. photo or art (see `classes`); default: the "
                                                 "model's default style, a photograph")
    g.add_argument("-o", "--output", required=True, help="output image path (.png, .jpg)")
    g.add_argument("--explain", action="store_true",
                   help="also print the image's receipt: which model made it and how to make it again")
    b = sub.add_parser("batch", help="a CSV manifest (sketch,class[,seed][,style]) or a folder of sketches -> "
                                     "images + receipts.jsonl; resumes where it stopped")
    b.add_argument("source", help="MANIFEST.csv (header naming at least sketch,class; paths relative to it) or a "
                                  "folder of .png/.jpg sketches (with --class)")
    b.add_argument("-o", "--output", required=True, help="output folder (created; receipts.jsonl goes there too)")
    b.add_argument("--class", dest="cls", default=None, help="the class of every sketch of a folder")
    b.add_argument("--seeds", type=int, default=1, help="images per sketch: seeds seed..seed+K-1 (default 1)")
    b.add_argument("--style", default=None, help="output style of rows that name none (default: the model's)")
    b.add_argument("--in-flight", type=int, default=IN_FLIGHT, help=f"requests in flight at once (default {IN_FLIGHT})")
    subs = [g, b, sub.add_parser("classes", help="list the model's classes and output styles"),
            sub.add_parser("health", help="every replica live + model ready, and the model's contract")]
    for p in subs:
        _global_options(p, defaults=False)
    args = ap.parse_args(argv)
    try:
        with SketchClient(args.url, timeout_s=args.timeout, retries=args.retries, root_certificates=args.tls_ca,
                          certificate_chain=args.tls_cert, private_key=args.tls_key,
                          version=args.model_version) as client:
            if args.command == "generate":
                out = Path(args.output)
                if not out.parent.is_dir():
                    raise InvalidInput(f"output folder {out.parent} does not exist")
                # the score is one more round trip (to the scorer): asked for only when it is shown
                arr, receipt = client.generate_explained(args.sketch, args.cls, seed=args.seed, style=args.style,
                                                         score=args.explain)
                to_image(arr).save(out)
                style = f", style {receipt.style!r}" if receipt.style is not None else ""
                print(f"wrote {out} ({arr.shape[1]}x{arr.shape[0]}, class {receipt.class_name!r}{style}, "
                      f"seed {receipt.seed})")
                if args.explain:
                    print(json.dumps(receipt.as_dict(), indent=2))
            elif args.command == "batch":
                return _batch(client, args)
            elif args.command == "classes":
                for i, name in enumerate(client.classes):
                    print(f"{i}\t{name}")
                if client.info.styles:
                    print(f"styles: {', '.join(client.info.styles)} (default {client.info.default_style})")
            else:
                replicas = client.replicas()
                if not any(r["ready"] for r in replicas):
                    print(json.dumps({"url": args.url, "ready": False, "replicas": replicas}, indent=2))
                    raise ServerUnavailable(f"{args.url}: no replica reachable with the model ready")
                info = client.info
                precisions = sorted({r.get("precision", "") for r in replicas if r["ready"]})
                print(json.dumps({"url": args.url, "ready": True, "replicas": replicas,
                                  "ready_replicas": sum(r["ready"] for r in replicas),
                                  "model": info.name, "resolution": info.resolution,
                                  "image_resolution": info.image_resolution,
                                  "noise_dim": info.noise_dim, "classes": len(info.class_names),
                                  "styles": list(info.styles),
                                  "max_batch_size": info.max_batch_size,
                                  "checkpoint_sha256": info.checkpoint_sha256, "precision": info.precision,
                                  "serving": _serving_summary(info.serving, info.compute_reserve_s)}, indent=2))
                if len(precisions) > 1:  # one deployment, other pixels depending on which replica answers
                    raise ServerUnavailable(f"{args.url}: the ready replicas compute in different precisions "
                                            f"({', '.join(precisions)}); serve every replica of a deployment in one")
    except SketchClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return next((code for cls, code in EXIT.items() if isinstance(e, cls)), 1)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
