"""The pieces of rollouts, canaries and keys that need no server: the contract comparison, the control socket's
protocol, the version-policy edit, the client's pinned-version errors, the gateway's key check, its `version`
parameter and the canary report's arithmetic."""
import asyncio
import threading

import pytest

from serving.control import ControlServer, request
from sketchygan_client.errors import ModelNotReady, VersionNotServed, from_grpc
from triton_repo.rollout_files import contract_mismatch
from web.auth import read_key, require_key
from web.canary import per_version
from web.query import GatewayError, parse_version

RUNNING = {"resolution": 64, "image_resolution": 128, "noise_dim": 64, "class_names": ["a", "b"],
           "styles": ["photo", "art"]}


@pytest.mark.parametrize("field, value", [("resolution", 32), ("image_resolution", 64), ("noise_dim", 16),
                                          ("class_names", ["a", "c"]), ("styles", [])])
def test_a_contract_mismatch_names_the_field_and_both_values(field, value):
    why = contract_mismatch(RUNNING, {**RUNNING, field: value})
    assert why is not None and repr(field) in why and repr(value) in why and repr(RUNNING[field]) in why


def test_an_equal_contract_has_no_mismatch():
    assert contract_mismatch(RUNNING, dict(RUNNING)) is None


def test_the_control_socket_streams_progress_and_answers_and_is_private(tmp_path):
    seen = []

    def handle(op, req, progress):
        progress(f"working on {op}")
        if op == "rollback":
            raise RuntimeError("nothing to roll back to")
        return {"echo": req.get("x")}

    path = tmp_path / "ctl" / "c.sock"
    server = ControlServer(path, handle)
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
        assert request(path, {"op": "versions", "x": 3}, seen.append) == {"ok": True, "echo": 3}
        assert seen == ["working on versions"]
        assert request(path, {"op": "rollback"}, seen.append) == {"ok": False, "error": "nothing to roll back to"}
        answer = request(path, {"op": "format-disk"}, seen.append)
        assert not answer["ok"] and "unknown op" in answer["error"]
        with pytest.raises(OSError, match="another server"):
            ControlServer(path, handle)  # a live socket is never taken over
    finally:
        server.close()
    assert not path.exists()
    with pytest.raises(OSError, match="no supervisor listens"):
        request(path, {"op": "versions"})


def test_a_stale_socket_of_a_killed_supervisor_is_replaced(tmp_path):
    import socket
    path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # bound, never listening: what a SIGKILLed supervisor leaves
    server = ControlServer(path, lambda op, req, progress: {"fine": True})
    try:
        assert request(path, {"op": "versions"})["fine"]
    finally:
        server.close()


def test_a_version_policy_edit_changes_nothing_else(exported, tmp_path):
    import shutil

    from serving.versions import Versions
    from triton_repo.config_reader import parse_config
    _, repo, _ = exported
    shutil.copytree(repo, tmp_path / "repo")

    from types import SimpleNamespace
    v = Versions(SimpleNamespace(config=SimpleNamespace(repository=tmp_path / "repo")))
    before = parse_config((v.folder / "config.pbtxt").read_text())
    assert v.served() == [1] and v.on_disk() == [1]
    v._policy([1, 2])
    after = parse_config((v.folder / "config.pbtxt").read_text())
    assert v.served() == [1, 2]
    after.version_policy.CopyFrom(before.version_policy)
    assert after == before  # Triton would reload every loaded version on any other change


class _DeadlineClient:
    """A tritonclient stand-in whose load call passes its deadline while the server goes on: `ready` is what
    is_model_ready answers per version after the load."""

    def __init__(self, ready: dict[str, bool]) -> None:
        self.ready = ready

    def load_model(self, *args, **kwargs):
        from tritonclient.utils import InferenceServerException
        raise InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")

    def is_model_ready(self, model, version, client_timeout=None):
        return self.ready[version]

    def close(self):
        pass


@pytest.mark.parametrize("v1_still_ready", [False, True])
def test_a_retire_whose_load_call_times_out_is_judged_by_what_the_server_serves(exported, tmp_path, v1_still_ready,
                                                                                caplog):
    import shutil
    from types import SimpleNamespace

    from serving.versions import RolloutError, Versions
    _, repo, _ = exported
    shutil.copytree(repo, tmp_path / "repo")
    client = _DeadlineClient({"1": v1_still_ready, "2": True})
    server = SimpleNamespace(config=SimpleNamespace(repository=tmp_path / "repo"), client=lambda: client,
                             admin_headers={}, log_tail=lambda n: "the server's last lines")
    v = Versions(server, load_timeout_s=0.3)
    v._policy([1, 2])
    if v1_still_ready:  # the server never took version 1 out: refused, naming the error and each version's state
        with pytest.raises(RolloutError, match=r"Deadline Exceeded.*\{1: True, 2: True\}"):
            v.retire(2)
        assert "the server's last lines" in caplog.text
    else:  # the call's deadline passed, the server did the work: the switch stands
        assert v.retire(2)["to"] == 2 and v.served() == [2]
        assert "serves alone all the same" in caplog.text


@pytest.mark.parametrize("status, message", [
    ("StatusCode.UNAVAILABLE", "Request for unknown model: 'sketchygan' version 1 is not at ready state"),
    ("StatusCode.NOT_FOUND", "Request for unknown model: 'sketchygan' version 7 is not found"),
])
def test_a_pinned_version_that_is_gone_is_final_not_retried(status, message):
    err = from_grpc(status, message)
    assert isinstance(err, VersionNotServed) and not err.retryable


def test_a_model_still_loading_stays_retryable():
    err = from_grpc("StatusCode.UNAVAILABLE", "Request for unknown model: 'sketchygan' has no available versions")
    assert isinstance(err, ModelNotReady) and not isinstance(err, VersionNotServed) and err.retryable


def test_the_client_refuses_a_version_that_is_not_a_number():
    from sketchygan_client import SketchClient
    with pytest.raises(ValueError, match="version must be a model version number"):
        SketchClient("127.0.0.1:1", version="latest")


def test_the_gateway_version_parameter():
    assert parse_version(None) is None and parse_version("") is None and parse_version("02") == "2"
    for bad in ("latest", "-1", "1.5", "9" * 30):
        with pytest.raises(GatewayError) as e:
            parse_version(bad)
        assert e.value.status == 400 and "version must be" in e.value.message


def _call(app, headers: dict[str, str], path: str = "/v1/classes") -> tuple[int, bytes]:
    sent = []

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(require_key(inner, "s3cret")(scope, None, send) if app is None else app(scope, None, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def test_the_api_key_is_asked_for_on_the_api_and_never_echoed():
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        status, body = _call(None, headers)
        assert status == 401 and b"s3cret" not in body and b"Authorization: Bearer" in body
    assert _call(None, {"Authorization": "Bearer s3cret"}) == (200, b"inner")
    for open_path in ("/", "/healthz", "/static/app.js"):
        assert _call(None, {}, open_path) == (200, b"inner")
    assert _call(None, {}, "/metrics")[0] == 401


def test_the_api_key_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    (tmp_path / "k").write_text("  abc \n")
    assert read_key(str(tmp_path / "k")) == "abc"
    (tmp_path / "empty").write_text("\n")
    for bad in ("empty", "missing"):
        with pytest.raises(ValueError, match="--api-key-file"):
            read_key(str(tmp_path / bad))
    monkeypatch.setenv("SKETCHYGAN_API_KEY", "from-env")
    assert read_key(None) == "from-env"
    monkeypatch.delenv("SKETCHYGAN_API_KEY")
    assert read_key(None) is None


def test_the_gateway_refuses_an_unprotected_public_address():
    from web.__main__ import exposed_without_protection
    assert exposed_without_protection("127.0.0.1", False, False) is None
    assert exposed_without_protection("0.0.0.0", True, False) is None
    assert exposed_without_protection("0.0.0.0", False, True) is None
    why = exposed_without_protection("0.0.0.0", False, False)
    assert "neither TLS" in why and "--insecure" in why


def test_the_canary_report_reads_each_version_from_the_gateway_metrics():
    from prometheus_client import generate_latest

    from sketchygan_client import Receipt
    from web.metrics import GatewayMetrics
    m = GatewayMetrics()

    def receipt(version, conf):
        return Receipt("sketchygan", version, "sha", "openvino", "a", None, 1, "d", conf)

    for _ in range(9):
        m.answered([receipt("1", 0.8), receipt("1", 0.6)], 0.030)
    m.answered([receipt("2", 0.2)], 0.300)
    rows = per_version(generate_latest(m.registry).decode())
    assert list(rows) == ["1", "2"]
    assert rows["1"]["images"] == 18 and rows["1"]["mean_class_confidence"] == pytest.approx(0.7)
    assert rows["2"]["images"] == 1 and rows["2"]["mean_class_confidence"] == pytest.approx(0.2)
    assert rows["1"]["p50_ms"] < rows["2"]["p50_ms"]


def test_the_control_socket_serves_one_request_at_a_time(tmp_path):
    inside, overlap = [0], []
    lock = threading.Lock()

    def handle(op, req, progress):
        with lock:
            inside[0] += 1
            overlap.append(inside[0])
        threading.Event().wait(0.05)
        with lock:
            inside[0] -= 1
        return {}

    path = tmp_path / "one.sock"
    server = ControlServer(path, handle)
    try:
        threads = [threading.Thread(target=request, args=(path, {"op": "versions"})) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        server.close()
    assert overlap == [1, 1, 1, 1]
