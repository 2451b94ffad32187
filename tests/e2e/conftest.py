"""A real tritonserver on 127.0.0.1, serving the tiny exported model, shared by the end-to-end tests."""
import pytest

from serving.server import ServerConfig, TritonServer, free_port


@pytest.fixture(scope="session")
def server(exported, tmp_path_factory):
    _, repo, _ = exported
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
    srv = TritonServer(cfg, log_path=tmp_path_factory.mktemp("triton") / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def patient_repo(exported, tmp_path_factory):
    """The test model with no queue timeout: for tests that freeze the model processes and need the queued requests
    to stay accepted however long the machine takes (the default 500 ms queue timeout would reject them)."""
    from export.repository import ServingConfig, contract_from_config, parse_config, write_model_folder
    _, repo, _ = exported
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    out = tmp_path_factory.mktemp("patient")
    write_model_folder(out, "cpu", contract, ServingConfig(max_batch_size=16, queue_timeout_us=0),
                       repo / "sketchygan" / "1" / "model.onnx")
    return out


class Gateway:
    """`python -m web` as a real process on a free loopback port, in front of `triton` (HOST:PORT)."""

    def __init__(self, triton: str, log_path, *extra: str) -> None:
        import subprocess
        import sys
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would block the gateway's logging
            self.proc = subprocess.Popen([sys.executable, "-m", "web", "--triton", triton, "--port", str(self.port),
                                          *extra], stdout=log, stderr=subprocess.STDOUT)

    def wait_listening(self, timeout_s: float = 60.0) -> "Gateway":
        """Until /healthz answers at all (200 or 503): the gateway is up, whatever tritonserver's state."""
        import time
        import urllib.error
        import urllib.request
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, f"gateway exited: {self.log()}"
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=5)
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                assert time.monotonic() < deadline, "gateway never started listening"
                time.sleep(0.1)

    def log(self) -> str:
        return open(self.log_path).read()

    def stop(self) -> str:
        """SIGTERM, wait, and return what it logged."""
        import subprocess
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.log()


@pytest.fixture(scope="session")
def gateway(server, tmp_path_factory):
    gw = Gateway(server.grpc_url, tmp_path_factory.mktemp("gateway") / "gateway.log").wait_listening()
    yield gw
    gw.stop()
