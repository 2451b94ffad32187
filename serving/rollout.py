"""`python -m serving rollout | promote | rollback | versions`: a new checkpoint on a running server, under load.

The command runs on the server's machine. It reads the running model's config (the public model-config API), has
`python -m export stage` export the checkpoint as a staged version — refused there, with the reason and before the
server is touched, for a file that is not a safetensors generator, non-finite weights or another contract — then
asks the supervisor over its control socket (serving/control.py) to check it in the running server and switch to it
(serving/versions.py). The export runs as its own process: serving never imports torch.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from serving.control import default_socket, request
from serving.process import LOOPBACK_HOSTS
from triton_repo.config_reader import config_text
from triton_repo.contract import MODEL_NAME


def _running_config(url: str):
    """The running generator's config (the public model-config API), as a ModelConfig message."""
    import tritonclient.grpc as grpcclient
    c = grpcclient.InferenceServerClient(url)
    try:
        return c.get_model_config(MODEL_NAME, client_timeout=10).config
    except Exception as e:  # noqa: BLE001
        raise OSError(f"could not read the running model's config at {url}: {e}") from None
    finally:
        c.close()


def _stage(args: argparse.Namespace, staged: Path) -> dict:
    """`python -m export stage` into `staged`: its facts, or ValueError with its reason."""
    running = staged.parent / f"{staged.name}.running-config.pbtxt"
    running.write_text(config_text(_running_config(args.url)))
    cmd = [sys.executable, "-m", "export", "stage", "--checkpoint", str(args.checkpoint), "--running-config",
           str(running), "--out", str(staged)] + (["--upsampler", args.upsampler] if args.upsampler else [])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    finally:
        running.unlink(missing_ok=True)
    if r.returncode != 0:
        raise ValueError((r.stderr.strip().splitlines() or ["the export failed"])[-1].removeprefix("error: "))
    return json.loads(r.stdout.strip().splitlines()[-1])


def _socket(args: argparse.Namespace) -> Path:
    host, _, port = args.url.rpartition(":")
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"--url {args.url}: rollouts act on a server on this machine (through its supervisor's "
                         f"control socket); run the command there, with --url 127.0.0.1:<gRPC port>")
    if not port.isdigit():
        raise ValueError(f"--url {args.url}: expected HOST:PORT, e.g. 127.0.0.1:8001")
    return Path(args.control_socket) if args.control_socket else default_socket(int(port))


def _answer(reply: dict) -> int:
    if not reply.get("ok"):
        print(f"error: {reply.get('error')}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in reply.items() if k != "ok"}, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    """The three commands (args.command: rollout, rollback, versions)."""
    try:
        sock = _socket(args)
        if args.command != "rollout":
            return _answer(request(sock, {"op": args.command}, lambda m: print(f"  {m}", flush=True)))
        staged = Path(tempfile.mkdtemp(prefix="sketchygan-rollout-")) / "staged"
        try:
            print(f"exporting {args.checkpoint} and checking it against the running model ...", flush=True)
            facts = _stage(args, staged)
            print(f"staged checkpoint {facts['checkpoint_sha256'][:12]} ({facts['runtime']}, {facts['precision']}); "
                  "asking the server to check and switch to it ...", flush=True)
            return _answer(request(sock, {"op": "rollout", "staged": str(staged), "canary": args.canary},
                                   lambda m: print(f"  {m}", flush=True)))
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1


def add_arguments(sub) -> None:
    """The rollout, rollback and versions subcommands of `python -m serving`."""
    for name, text in (("rollout", "export a checkpoint as the next version of the running server's model, check it "
                                   "there, switch new requests to it, unload the old version"),
                       ("promote", "end a canary: the new version serves alone, the old one is unloaded"),
                       ("rollback", "switch the running server back to the previous version (during a canary: "
                                    "unload the new one)"),
                       ("versions", "the versions the running server serves and keeps")):
        p = sub.add_parser(name, help=text)
        if name == "rollout":
            p.add_argument("--checkpoint", required=True, help="the new generator .safetensors (+ .json sidecar)")
            p.add_argument("--upsampler", help="learned upsampler fused into it (default: the shipped one when the "
                                               "running model has an upsampler; 'none' for none)")
            p.add_argument("--canary", action="store_true",
                           help="load it beside the current version and stop there: both are served (the gateway's "
                                "--canary-percent sends it a share of calls) until `promote` or `rollback`")
        p.add_argument("--url", default="127.0.0.1:8001", help="the running server's gRPC address, on this machine")
        p.add_argument("--control-socket", help="its supervisor's control socket (default: the one for the URL's "
                                                "port, /tmp/sketchygan-<uid>/control-<port>.sock)")
        p.set_defaults(fn=run)
