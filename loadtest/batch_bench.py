"""The batch job's throughput (`sketchygan-client batch`: requests of up to max_batch_size, a few in flight) next to
the same images made with one `generate` call per image, interleaved round by round against one real server."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from loadtest.sketches import sketch_set


def measure_batch(repository: Path, sketches: int = 48, seeds: int = 2, rounds: int = 3) -> dict:
    from serving.machine import cpu_facts
    from serving.process import free_port
    from serving.server import ServerConfig, TritonServer
    from sketchygan_client import SketchClient
    from sketchygan_client.batch import IN_FLIGHT, read_manifest, run_batch
    cfg = ServerConfig(repository=repository, grpc_port=free_port(), metrics_port=free_port())
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        with TritonServer(cfg, log_path=Path("reports") / "batch-tritonserver.log") as srv, \
                SketchClient(srv.grpc_url, timeout_s=60) as client:
            classes = client.classes
            rows = ["sketch,class"]
            for i, sk in enumerate(sketch_set(sketches, client.resolution)):
                Image.fromarray(sk).save(work / f"s{i:03d}.png")
                rows.append(f"s{i:03d}.png,{classes[i % len(classes)]}")
            manifest = work / "manifest.csv"
            manifest.write_text("\n".join(rows) + "\n")
            items, errors = read_manifest(manifest, seeds, None)
            if errors:
                raise RuntimeError(f"the benchmark's own manifest has bad rows: {errors}")
            for it in items[:8]:  # warm-up
                client.generate_array(it.sketch, it.cls, seed=it.seed)
            batch_s, single_s = [], []
            for r in range(rounds):
                out = work / f"out{r}"
                out.mkdir()
                t0 = time.perf_counter()
                result = run_batch(client, items, out, manifest)
                batch_s.append(time.perf_counter() - t0)
                if result.written != len(items) or result.errors:
                    raise RuntimeError(f"the batch job did not make every image: {result}")
                t0 = time.perf_counter()
                for it in items:
                    Image.fromarray(client.generate_array(it.sketch, it.cls, seed=it.seed)).save(work / "one.png")
                single_s.append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    b, s = float(np.median(batch_s)), float(np.median(single_s))
    return {"machine": cpu_facts(flags=False), "images": len(items), "rounds": rounds,
            "batch_images_per_s": round(len(items) / b, 1), "one_call_per_image_images_per_s": round(len(items) / s, 1),
            "batch_over_one_call_per_image": round(s / b, 2), "max_batch_size": client.info.max_batch_size,
            "in_flight": IN_FLIGHT}
