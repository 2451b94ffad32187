"""The hardened set-up, on a real tritonserver and gateway: mutual TLS refuses a caller without a certificate of the
operator's CA and serves one with it (the project's client, its CLI and the gateway); the gateway serves HTTPS and
asks for its API key; it refuses to listen beyond loopback unprotected; and no secret reaches a log, a metric, a
receipt or `health`."""
import json
import secrets
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from loadtest.certs import Authority
from serving.process import free_port
from sketchygan_client import SketchClient
from sketchygan_client.errors import SketchClientError
from tests.e2e.conftest import ready_json, serve, stop_serving
from web.process import GatewayProcess


def _get(url: str, ctx, key: str | None = None, data: bytes | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture()
def pki(tmp_path):
    ca = Authority(tmp_path / "ca")
    stranger = Authority(tmp_path / "stranger", "a stranger's CA").leaf("stranger")
    return ca, ca.leaf("server"), ca.leaf("client"), stranger


def test_mutual_tls_https_and_api_key_with_no_secret_anywhere(exported, tmp_path, pki):
    ca, server, client, stranger = pki
    _, repo, _ = exported
    restricted = "rk" + secrets.token_hex(12)
    api_key = "ak" + secrets.token_hex(12)
    (tmp_path / "api.key").write_text(api_key + "\n")
    proc, lines, (g, m, h) = serve(shutil.copytree(repo, tmp_path / "repo"), tmp_path, "--calibrate", "off",
                                   "--tls-cert", str(server.cert), "--tls-key", str(server.key),
                                   "--tls-client-ca", str(ca.pem.cert), "--restricted-value", restricted)
    url = f"127.0.0.1:{g}"
    sketch = np.full((64, 64), 255, np.uint8)
    gw = None
    try:
        mine = dict(root_certificates=str(ca.pem.cert), certificate_chain=str(client.cert),
                    private_key=str(client.key))
        with SketchClient(url, **mine) as c:
            _, receipt = c.generate_explained(sketch, 0, seed=3)
        # refused: no certificate, a stranger's, no TLS at all (one try each, short deadlines)
        for kw in ({"root_certificates": str(ca.pem.cert)},
                   {"root_certificates": str(ca.pem.cert), "certificate_chain": str(stranger.cert),
                    "private_key": str(stranger.key)},
                   {}):
            with SketchClient(url, timeout_s=3, retries=0, **kw) as c, pytest.raises(SketchClientError):
                c.generate_array(sketch, 0, seed=3)
        cli = [sys.executable, "-m", "sketchygan_client.cli", "--url", url, "--tls-ca", str(ca.pem.cert)]
        ok = subprocess.run([*cli, "--tls-cert", str(client.cert), "--tls-key", str(client.key), "health"],
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        refused = subprocess.run([*cli, "--timeout", "3", "--retries", "0", "health"], capture_output=True,
                                 text=True, timeout=60)
        assert refused.returncode != 0

        # the gateway: mutual TLS to tritonserver, HTTPS to its callers, the API key
        gw = GatewayProcess(url, free_port(), tmp_path / "gateway.log", "--triton-tls-ca", str(ca.pem.cert),
                            "--triton-tls-cert", str(client.cert), "--triton-tls-key", str(client.key),
                            "--tls-cert", str(server.cert), "--tls-key", str(server.key),
                            "--api-key-file", str(tmp_path / "api.key"), https_ca=ca.pem.cert).start().wait()
        ctx = ssl.create_default_context(cafile=str(ca.pem.cert))
        assert _get(gw.url + "/healthz", ctx)[0] == 200  # probes need no key
        for key in (None, "wrong" + api_key):
            status, body, headers = _get(gw.url + "/v1/classes", ctx, key)
            assert status == 401 and headers.get("www-authenticate") == "Bearer", body
            assert api_key.encode() not in body
        status, body, _ = _get(gw.url + "/v1/classes", ctx, api_key)
        assert status == 200, body
        from web.app import _png
        status, body, headers = _get(gw.url + "/v1/generate?class=0&seed=3", ctx, api_key, _png(sketch))
        assert status == 200 and headers["x-checkpoint-sha256"] == receipt.checkpoint_sha256, (status, body[:200])
        with pytest.raises(OSError):  # plain HTTP to the HTTPS port: no answer
            urllib.request.urlopen(f"http://127.0.0.1:{gw.port}/healthz", timeout=5)
        metrics = _get(gw.url + "/metrics", ctx, api_key)[1].decode()
        health = ok.stdout + json.dumps(ready_json(h)[1]) + json.dumps(receipt.as_dict()) + metrics
    finally:
        gw_log = gw.stop() if gw is not None else ""
        stop_serving(proc, lines)
    logs = "".join(lines) + gw_log + (tmp_path / ".cache" / f"tritonserver-{g}.log").read_text(errors="replace")
    for secret in (restricted, api_key):
        assert secret not in logs and secret not in health, "a secret was written out"
    assert "BEGIN PRIVATE KEY" not in logs


def test_the_gateway_refuses_to_listen_beyond_loopback_unprotected(tmp_path):
    r = subprocess.run([sys.executable, "-m", "web", "--host", "0.0.0.0", "--port", "1"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "neither TLS" in r.stderr and "--insecure" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "web", "--api-key-file", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--api-key-file" in r.stderr, r.stderr
