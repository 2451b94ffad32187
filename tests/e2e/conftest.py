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
