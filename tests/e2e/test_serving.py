"""`python -m serving` and the server helper: foreground run, clean SIGTERM, TLS, start-up errors."""
import signal
import subprocess

import numpy as np
import pytest

from serving.process import ServerError, free_port
from serving.server import ServerConfig, TritonServer, leftover_shm
from sketchygan_client import ServerUnavailable, SketchClient
from tests.e2e.conftest import serve, wait_for


def _stubs() -> list[str]:
    out = subprocess.run(["pgrep", "-f", "triton_python_backend_stub"], capture_output=True, text=True).stdout
    return out.split()


@pytest.mark.slow
def test_serving_cli_runs_in_foreground_and_sigterm_stops_everything(exported, tmp_path):
    _, repo, _ = exported
    stubs_before, shm_before = set(_stubs()), set(leftover_shm())
    proc, lines, (grpc_port, _, _) = serve(repo, tmp_path)  # returns once it printed its ready line
    wait_for(lambda: any("sketchygan-client" in l for l in lines), 10, "the line that says how to call it")
    with SketchClient(f"127.0.0.1:{grpc_port}", timeout_s=30) as c:
        assert c.generate_array(np.full((32, 32), 255, np.uint8), 0, seed=0).shape == (32, 32, 3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    out = "".join(lines)
    assert proc.returncode == 0 and "stopped" in out, out
    assert set(_stubs()) <= stubs_before
    assert set(leftover_shm()) <= shm_before


def test_start_failure_reports_the_server_log(tmp_path):
    bad = tmp_path / "repo" / "sketchygan"
    (bad / "1").mkdir(parents=True)
    (bad / "config.pbtxt").write_text('name: "sketchygan"\nbackend: "python"\nmax_batch_size: 4\n')
    cfg = ServerConfig(repository=tmp_path / "repo", grpc_port=free_port(), metrics_port=free_port())
    log = tmp_path / "log"
    log.write_text("an earlier start's line: Failed to preinitialize Python stub\n")  # a restart appends: not read
    with pytest.raises(ServerError, match=r"cannot become ready: .*Failed to preinitialize Python stub: Python model "
                                          r"file not found") as err:  # at once: Triton itself would wait for good
        TritonServer(cfg, log_path=log).start(timeout_s=600)
    assert "sketchygan/1/model.py" in str(err.value)  # the log tail names the model that failed
    with pytest.raises(ServerError, match="does not exist"):
        TritonServer(ServerConfig(repository=tmp_path / "nowhere")).start()


@pytest.mark.slow
def test_tls_with_a_self_signed_pair(exported, tmp_path):
    _, repo, _ = exported
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port(), tls_cert=cert, tls_key=key)
    with TritonServer(cfg, log_path=tmp_path / "tls.log") as srv:
        with SketchClient(srv.grpc_url, timeout_s=30, root_certificates=str(cert)) as c:
            assert c.generate_array(np.full((32, 32), 255, np.uint8), 1, seed=3).shape == (32, 32, 3)
        with SketchClient(srv.grpc_url, timeout_s=3, retries=1) as plain:  # no TLS: the handshake fails
            with pytest.raises(ServerUnavailable):
                plain.generate_array(np.full((32, 32), 255, np.uint8), 1, seed=3)
