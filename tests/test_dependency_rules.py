"""The import rules of docs/architecture.md, checked on the source (every import, also those inside functions):
serving/ and loadtest/ stand on triton_repo/ and never reach export/, torch or training/; triton_repo/ reaches no
other project code and not even onnx; web/ reaches only the client; the client reaches no project code."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("training", "export", "triton_repo", "serving", "loadtest", "web", "sketchygan_client")


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    base = ROOT / "client" if parts[0] == "sketchygan_client" else ROOT
    for cand in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts) / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
    return out


def reach(package: str) -> set[str]:
    """Modules reachable from any file of `package` by following project-internal imports transitively."""
    base = ROOT / "client" / package if package == "sketchygan_client" else ROOT / package
    todo = [p for p in base.rglob("*.py")]
    seen_files, reached = set(), set()
    while todo:
        f = todo.pop()
        if f in seen_files:
            continue
        seen_files.add(f)
        for mod in _imports(f):
            reached.add(mod)
            if mod.split(".")[0] in PROJECT and (target := _module_file(mod)) is not None:
                todo.append(target)
    return reached


# the one process helper (start, ready, log tail, stop): standard library only, so the gateway may start
# `python -m serving` with it without reaching anything else of serving/; and the photo edge extractor the training
# data uses (OpenCV and numpy only), so that the gateway's photo -> sketch is the training data's
ALLOWED = {"web": ("serving.process", "serving.process.Child", "serving.process.LOOPBACK_HOSTS", "training.edges",
                   "training.edges.cutout_photo_edge_map", "training.edges.photo_edge_map")}


def test_the_edge_extractor_the_gateway_uses_is_opencv_and_numpy_only():
    others = {m.split(".")[0] for m in _imports(ROOT / "training" / "edges.py")} - {
        "__future__", "dataclasses", "cv2", "numpy"}
    assert not others, f"training/edges.py imports {sorted(others)}"
    assert "import" not in (ROOT / "training" / "__init__.py").read_text()  # importing it runs nothing


def test_the_process_helper_the_gateway_uses_is_standard_library_only():
    others = {m.split(".")[0] for m in _imports(ROOT / "serving" / "process.py")} - {
        "__future__", "os", "signal", "socket", "subprocess", "sys", "time", "collections", "pathlib", "psutil"}
    assert not others, f"serving/process.py imports {sorted(others)}"


@pytest.mark.parametrize("package, forbidden", [
    ("triton_repo", ("torch", "onnx", "training", "export", "serving", "loadtest", "web")),
    ("serving", ("torch", "onnx", "training", "export", "loadtest")),
    ("loadtest", ("torch", "onnx", "training", "export")),
    ("web", ("torch", "training", "export", "serving", "loadtest")),  # the client (and ALLOWED, above)
    ("sketchygan_client", ("torch", "training", "export", "serving", "loadtest")),
])
def test_package_never_reaches_forbidden_code(package, forbidden):
    bad = sorted(m for m in reach(package) if m.split(".")[0] in forbidden and m not in ALLOWED.get(package, ()))
    assert not bad, f"{package}/ reaches {bad}"


def test_training_knows_nothing_of_serving():
    bad = sorted(m for m in reach("training") if m.split(".")[0] in ("tritonclient", "export", "serving", "loadtest",
                                                                     "sketchygan_client"))
    assert not bad, bad


def test_the_rule_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from training.generator import Generator\n    import torch\n")
    assert {"training.generator", "torch"} <= _imports(f)


def test_serving_and_loadtest_import_with_torch_and_training_blocked():
    """The same rule at run time: every module of the three packages imports with torch, onnx, training/ and export/
    made unimportable."""
    import subprocess
    import sys
    mods = [".".join(p.relative_to(ROOT).with_suffix("").parts) for pkg in ("triton_repo", "serving", "loadtest")
            for p in (ROOT / pkg).glob("*.py")  # the served models import only inside tritonserver
            if p.name not in ("__main__.py", "locustfile.py", "served_model.py", "drain_model.py", "score_model.py")]
    code = ("import sys, importlib\nfor m in ('torch', 'onnx', 'training', 'export'):\n    sys.modules[m] = None\n"
            f"for m in {mods!r}:\n    importlib.import_module(m)\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def _graph(package: str) -> dict[str, set[str]]:
    """Project-internal imports of each module of `package` (module name -> modules it imports)."""
    def named(path: Path) -> str:
        return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    out = {}
    for f in (ROOT / package).rglob("*.py"):
        mods = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import module` imports the module; `from module import name` the module
                subs = {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
                mods |= subs if len(subs) == len(node.names) else subs | {node.module}
        targets = {named(t) for m in mods if m.split(".")[0] == package and (t := _module_file(m)) is not None}
        out[named(f)] = targets - {named(f)}
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


@pytest.mark.parametrize("package", ["training", "export", "triton_repo", "serving", "loadtest", "web"])
def test_no_import_cycles(package):
    """Modules import each other one way only (also inside functions), so each can be read and tested alone."""
    graph = _graph(package)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", ["served_model.py", "cpu_sessions.py", "drain_model.py", "score_model.py"])
def test_the_files_copied_into_model_folders_import_no_project_code(name):
    """These files are deployed into a model repository and run where the project is not installed: each imports
    only the standard library, numpy, the runtimes and Triton's python-backend utilities."""
    import sys
    allowed = {"numpy", "onnxruntime", "openvino", "triton_python_backend_utils", "__future__"}
    top = {m.split(".")[0] for m in _imports(ROOT / "triton_repo" / name)}
    assert top - allowed - set(sys.stdlib_module_names) == set()
