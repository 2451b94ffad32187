# Every target runs inside .venv, created on first use from pyproject.toml pinned by constraints.txt.
PY      := .venv/bin/python
STAMP   := .venv/.installed
RUN     ?= runs/v4-cross
CKPT    ?= checkpoints/sketchygan-cpu.safetensors

.PHONY: venv test lint test-slowed test-fast train-default ship bench-train bench bench-runtimes bench-serve bench-web bench-cache bench-batch bench-restart bench-precision bench-int8 bench-gpu bench-rollout bench-tls rollout rollback canary-report \
        evaluate upsampler baseline export serve prometheus-install data-install browser-install proxy-install prometheus loadtest \
        chaos scale proxy web clean
REPO_CFG := model_repository/sketchygan/config.pbtxt

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade "pip==24.3.1"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]" -e "./client[metrics]"
	touch $(STAMP)

## the full test suite (what CI runs): the linter first, then pytest
test: $(STAMP) prometheus-install data-install browser-install proxy-install lint
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

## ruff (pyproject.toml's [tool.ruff]): pyflakes, pycodestyle, import order, naming, blind excepts
lint: $(STAMP)
	$(PY) -m ruff check .

## the end-to-end tests again on a slowed server: every tritonserver on core 0, shared with a busy loop (CI's second
## pass: a test that passes only on an idle or fast machine fails here)
test-slowed: $(STAMP) prometheus-install data-install browser-install proxy-install
	SKETCHYGAN_TEST_SLOWED_CORE=0 $(PY) -m pytest -q tests/e2e; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

## quick loop: skip the slow (multi-process) tests
test-fast: $(STAMP) prometheus-install data-install browser-install proxy-install
	$(PY) -m pytest -q -m "not slow"

## train the shipped default again (docs/model.md): the photo style, in two stages from the art model it started
## from (checkpoints/candidates/sketchygan-v3-ft-div4-step3000): 800 steps on default-v4 (206 photos + the art
## data), then on with the cross-style term to step 1200 of a 1600-step schedule (~90 min on a 2-core AVX2 EPYC at
## 0.3-0.4 step/s; measure first: `make bench-train`); each stage resumes where it stopped
PHOTO_RUN := runs/v4-photo
PHOTO_FROM := checkpoints/candidates/sketchygan-v3-ft-div4-step3000.safetensors
train-default: $(STAMP)
	$(PY) -m training train --preset cpu --data default-v4 --steps 800 --set w_diversity=4 --set checkpoint_every=200 \
	  --out $(PHOTO_RUN) $(if $(wildcard $(PHOTO_RUN)/checkpoint.safetensors),--resume,--finetune-from $(PHOTO_FROM))
	$(PY) -m training train --preset cpu --data default-v4 --steps 1600 --stop-at 1200 --set w_diversity=4 \
	  --set w_cross_style=1 --set checkpoint_every=200 --out $(RUN) \
	  $(if $(wildcard $(RUN)/checkpoint.safetensors),--resume,--init-from $(PHOTO_RUN)/checkpoint.safetensors)

## training img/s: plain eager loop vs channels_last vs torch.compile, side by side
bench-train: $(STAMP)
	$(PY) -m training bench --preset cpu --steps 10 --rounds 2

## in-process images/s: onnxruntime vs OpenVINO x layouts x batch sizes, 3 interleaved rounds -> docs/benchmarks/
bench-runtimes: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest runtimes --repository model_repository --out docs/benchmarks

## serving sweep: concurrency 1..32, dynamic batching on/off, served/in-process ceiling, OpenVINO in PRECISION
## (f32 -> sweep.json; bf16 -> sweep_bf16.json) -> docs/benchmarks/
PRECISION ?= f32
bench-serve: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest sweep --repository model_repository --precision $(PRECISION) --out docs/benchmarks

## on a CUDA machine: PyTorch FP16 (autocast, compiled) vs FP32 eager on the served graph -> docs/benchmarks/
bench-gpu: $(STAMP) $(CKPT)
	$(PY) -m export torch-bench --checkpoint $(CKPT) --device cuda --batches 1,32 --out docs/benchmarks/torch_gpu.json

## the HTTP gateway's latency next to the gRPC client's, the page's 4-request batching, the grid's one call against
## one call per image, and live drawing in Chromium (pointer-up -> 4 results) -> docs/benchmarks/gateway.json
bench-web: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest gateway --repository model_repository --out docs/benchmarks

## f32 and bf16 deployments, each calibrated in its precision, served side by side at 16 clients and against in
## process (needs a CPU with AVX-512-BF16 or AMX) -> docs/benchmarks/precision.{json,md}
bench-precision: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest precision --repository model_repository --out docs/benchmarks

## int8 with NNCF four ways, gated against f32 and timed against f32/bf16 in process (installs the [int8] extra)
## -> docs/benchmarks/int8.json
bench-int8: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[int8]"
	$(PY) -m export int8-study --out docs/benchmarks/int8.json

## response cache: hit vs miss latency, interleaved call by call -> docs/benchmarks/cache.json
bench-cache: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest cache --repository model_repository --out docs/benchmarks

## the client's batch job (sketchygan-client batch) vs one generate call per image, same images -> docs/benchmarks/batch.json
bench-batch: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest batch --repository model_repository --out docs/benchmarks

bench: bench-train bench-runtimes bench-serve bench-web bench-cache bench-batch bench-restart

## Debian's prometheus + promtool (the test suite runs a real Prometheus); needs root or sudo
prometheus-install:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

## Debian's HAProxy: the L7 gRPC proxy in front of replicas (make proxy, make scale, the tests)
proxy-install:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends haproxy >/dev/null; }

## Debian's Noto Color Emoji (a colour style of the default-v2 data), npm (fetches the pinned openmoji package once)
## and the photo data: Tux Paint's photo stamps, `apt-get download`ed and only the allow-listed PNGs extracted
data-install: $(STAMP)
	@test -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf && command -v npm >/dev/null || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends fonts-noto-color-emoji $$(command -v npm >/dev/null || echo npm) >/dev/null; }
	@$(PY) -m training.sources.tuxpaint || { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && $(PY) -m training.sources.tuxpaint; }

## Debian's chromium for the playground's browser tests (Playwright drives it; its own browser download is unreachable)
browser-install:
	@command -v chromium >/dev/null || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## Prometheus on 127.0.0.1:9090 scraping a local server (make serve) and a client exporter on :9100
prometheus: $(STAMP) prometheus-install
	$(PY) -m serving prometheus --triton 127.0.0.1:8002 --client 127.0.0.1:9100 --supervisor 127.0.0.1:8003

## headless Locust against a server it starts (or HOST=127.0.0.1:8001); reports/ gets CSV + HTML
loadtest: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest locust $(if $(HOST),--host $(HOST),) --users 8 --run-time 30s --reports reports

## faults under load against a supervised server it starts, in 3 CPU conditions (unpinned; server on its own core;
## server on a core shared with 2 busy loops); SOAK_S=600 adds the soak -> reports/chaos.{md,json}
SOAK_S ?= 0
chaos: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest chaos --repository model_repository --soak-s $(SOAK_S) --out reports

## graceful restarts of `python -m serving` under 8 default clients, unpinned and on a core shared with busy loops:
## a new checkpoint onto the running `make serve`: exported, checked there, switched to under load (docs/rollout.md)
rollout: $(STAMP)
	@test -n "$(CHECKPOINT)" || { echo "usage: make rollout CHECKPOINT=runs/x/generator.safetensors"; exit 2; }
	$(PY) -m serving rollout --checkpoint $(CHECKPOINT) --url 127.0.0.1:8001

## the running `make serve` back to its previous model version
rollback: $(STAMP)
	$(PY) -m serving rollback --url 127.0.0.1:8001

## a canary next to the stable version, from the gateway's per-version metrics (GATEWAY=http://host:port)
GATEWAY ?= http://127.0.0.1:8080
canary-report: $(STAMP)
	$(PY) -m web.canary --url $(GATEWAY)

## a rollout and a rollback under load: command and switch seconds, p50/p99 before/during/after
## -> docs/benchmarks/rollout.{json,md}
bench-rollout: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest rollout --repository model_repository --out docs/benchmarks

## mutual TLS vs plain gRPC at 16 clients, two servers side by side -> docs/benchmarks/tls.{json,md}
bench-tls: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest tls --repository model_repository --out docs/benchmarks

## SIGTERM -> ready seconds and failures -> docs/benchmarks/restart.{json,md}
bench-restart: $(STAMP) $(REPO_CFG)
	$(PY) -m loadtest restart --repository model_repository --out docs/benchmarks

## scale-out: REPLICAS supervised servers on loopback, load through one client target and through HAProxy, one
## replica killed and restarted in each -> docs/benchmarks/scale.{json,md}
REPLICAS ?= 3
scale: $(STAMP) $(REPO_CFG) proxy-install
	$(PY) -m loadtest scale --repository model_repository --replicas $(REPLICAS) --precision $(PRECISION) --out docs/benchmarks

## HAProxy on 127.0.0.1:8010 in front of running replicas: PROXY_REPLICAS="127.0.0.1:8001@8003 127.0.0.1:8011@8013"
## (each gRPC address @ its supervisor's health port, as `python -m serving --grpc-port P --health-port H` serves)
PROXY_REPLICAS ?= 127.0.0.1:8001@8003
proxy: $(STAMP) proxy-install
	$(PY) -m serving proxy $(foreach r,$(PROXY_REPLICAS),--replica $(r))

## copy the EMA generator of a finished run into checkpoints/ (what export and serve start from)
ship:
	mkdir -p checkpoints
	cp $(RUN)/generator.safetensors $(CKPT)
	cp $(RUN)/generator.json $(basename $(CKPT)).json

## pix2pix baseline on the same data (default-v3), 2000 steps
baseline: $(STAMP)
	$(PY) -m training baseline --preset cpu --data default-v3 --steps 2000 --out runs/pix2pix-v3

## checkpoint -> ONNX (parity) -> FP16 check -> model_repository/ (CPU) + model_repository_gpu/ (TensorRT, ORT-TRT)
export: $(STAMP)
	$(PY) -m export --checkpoint $(CKPT)

$(REPO_CFG): $(CKPT) $(wildcard checkpoints/scorer.safetensors) $(wildcard checkpoints/upsampler-2x.safetensors) $(wildcard export/*.py) $(wildcard triton_repo/*.py) | $(STAMP)
	$(PY) -m export --checkpoint $(CKPT) --targets cpu

## start tritonserver in the foreground on 127.0.0.1 (gRPC 8001, metrics 8002); Ctrl-C stops it
serve: $(STAMP) $(REPO_CFG)
	$(PY) -m serving --repository model_repository

## the playground on http://127.0.0.1:8080/ plus the tritonserver behind it (gRPC 8001); Ctrl-C stops both
web: $(STAMP) $(REPO_CFG)
	$(PY) -m web --serve-repository model_repository --triton 127.0.0.1:8001 --port 8080

## the learned 2x upsampler served after the generator (64 -> 128 px): train it (~6 min at 8 step/s), measure it
## against bicubic and a generator at 128 px -> checkpoints/upsampler-2x.*, docs/eval/upsampler.json and its grid
upsampler: $(STAMP)
	$(PY) -m training upsampler --out checkpoints/upsampler-2x.safetensors --generator $(CKPT) \
		--output docs/eval/upsampler.json --grid docs/img/upsampler_compare.jpg

## the shipped checkpoint's evaluation: every style on the thin-stroke set and the held-out photos' edges, and the
## photo rule (photo-likeness, class top-1, fidelity, diversity; ~26 min the first time, the judges are cached)
evaluate: $(STAMP)
	$(PY) -m training evaluate-styles $(CKPT)

clean:
	rm -rf .pytest_cache runs/tmp-*
