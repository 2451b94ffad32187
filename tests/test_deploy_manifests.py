"""The Kubernetes manifests in docs/deploy parse and point at the right ports, paths and flags."""
from pathlib import Path

import yaml

DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy" / "kubernetes.yaml"


def _docs():
    """Manifests by kind (the model server's) and by (kind, name) for the others."""
    docs = list(yaml.safe_load_all(DOC.read_text()))
    out = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    out |= {d["kind"]: d for d in docs if d["metadata"]["name"] == "sketchygan"}
    return out


def test_deployment_probes_ports_and_safe_flags():
    dep = _docs()["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    triton = next(c for c in pod["containers"] if c["name"] == "triton")
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/models/sketchygan/ready", "port": "http"}
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    args = triton["args"]
    assert "--model-control-mode=none" in args and "--strict-readiness=true" in args
    assert any(a.startswith("--grpc-restricted-protocol=shared-memory,model-repository") for a in args)
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    # drain: preStop pause + Triton's exit timeout fit inside the grace period, with margin
    pre = triton["lifecycle"]["preStop"]["exec"]["command"]
    exit_timeout = int(next(a for a in args if a.startswith("--exit-timeout-secs=")).split("=")[1])
    assert pre[0] == "sleep" and int(pre[1]) + exit_timeout < pod["terminationGracePeriodSeconds"]
    init = pod["initContainers"][0]
    assert init["image"] == triton["image"], "build the engine with the serving release's TensorRT"
    assert "build_engine.sh" in " ".join(init["command"])
    release = triton["image"].rsplit(":", 1)[1]
    assert tuple(int(x) for x in release.split("-")[0].split(".")) >= (25, 7)  # after bulletin 5687


def test_service_and_autoscaler_reference_the_deployment():
    d = _docs()
    svc, hpa = d["Service"], d["HorizontalPodAutoscaler"]
    assert svc["spec"]["selector"] == d["Deployment"]["spec"]["selector"]["matchLabels"]
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"grpc": 8001, "metrics": 8002}
    assert hpa["spec"]["scaleTargetRef"]["name"] == d["Deployment"]["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "sketchygan_queue_us_per_request"


def test_web_gateway_deployment_runs_the_cli_it_names_and_reaches_the_model_service():
    from web.__main__ import parser
    d = _docs()
    dep, svc = d[("Deployment", "sketchygan-web")], d[("Service", "sketchygan-web")]
    web = dep["spec"]["template"]["spec"]["containers"][0]
    assert web["args"][:3] == ["python", "-m", "web"]
    args = parser().parse_args(web["args"][3:])  # the flags exist and are valid
    # the gateway balances its calls over every pod: a dns:/// target naming the headless Service
    from sketchygan_client.targets import parse
    target = parse(args.triton)
    assert args.triton.startswith("dns:///") and target.scheme == "dns"
    (host, port), = target.endpoints
    headless = d[("Service", host)]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == d["Deployment"]["spec"]["selector"]["matchLabels"]
    assert port in {p["port"] for p in headless["spec"]["ports"] if p["name"] == "grpc"}
    assert args.host == "0.0.0.0" and {p["containerPort"] for p in web["ports"]} == {args.port}
    assert web["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "httpGet" not in web["livenessProbe"], "liveness must not depend on tritonserver being reachable"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert (Path(__file__).resolve().parents[1] / "docs" / "deploy" / "web.Dockerfile").is_file()
