"""Triton model folders written atomically into a repository: the generator's (one per target, with its ONNX or
the engine script), the class-confidence scorer's beside it, and the supervisor's drain barrier."""
from __future__ import annotations

import importlib.util
import os
import py_compile
import shutil
import tempfile
from pathlib import Path

from triton_repo.config import DRAIN_MODEL, drain_model_config, model_config, scorer_model_config
from triton_repo.config_reader import config_text
from triton_repo.contract import CHECKPOINT_FILE, MODEL_NAME, SCORER_NAME, Contract, ScorerContract
from triton_repo.serving_config import ServingConfig


def write_drain_folder(repo: Path) -> Path:
    """Write `<repo>/sketchygan_drain/` beside the CPU model: what lets the supervisor drain without NOT_FOUND."""
    folder = Path(repo) / DRAIN_MODEL
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(config_text(drain_model_config()))
    shutil.copyfile(Path(__file__).with_name("drain_model.py"), folder / "1" / "model.py")
    return folder


def _swap_in(repo: Path, name: str, fill) -> Path:
    """`<repo>/<name>/` written atomically: `fill(folder)` builds it in a temp folder, which then replaces the old."""
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    if not os.access(repo, os.W_OK):
        raise PermissionError(f"output folder {repo} is not writable")
    final = repo / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=repo))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if final.exists():
            old = repo / f".{name}-old-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_version_files(vdir: Path, onnx_path: Path, checkpoint_sha256: str) -> None:
    """One CPU version folder's files: the ONNX, the served model.py and the cpu_sessions.py it runs the ONNX with
    (both compiled), and the checkpoint it answers with."""
    shutil.copyfile(onnx_path, vdir / "model.onnx")
    shutil.copyfile(Path(__file__).with_name("served_model.py"), vdir / "model.py")
    shutil.copyfile(Path(__file__).with_name("cpu_sessions.py"), vdir / "cpu_sessions.py")
    (vdir / CHECKPOINT_FILE).write_text(checkpoint_sha256 + "\n")
    compile_python_files(vdir)


def compile_python_files(vdir: Path) -> None:
    """Write the bytecode of the version folder's Python files (model.py, cpu_sessions.py) into it now. The python
    backend's model process writes it on its first import otherwise (it ignores PYTHONDONTWRITEBYTECODE), which
    changes the folder after Triton noted its time: the next load request (a rollout of another version) would then
    reload this version. Validated by the source's hash, so a copy of the folder with new file times still uses it."""
    for source in sorted(vdir.glob("*.py")):
        py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


def write_model_folder(repo: Path, target: str, contract: Contract, serving: ServingConfig, onnx_path: Path,
                       extra_files: dict[str, str] | None = None) -> Path:
    """Write `<repo>/sketchygan/` for `target` atomically: built in a temp folder, then swapped into place."""

    def fill(tmp: Path) -> None:
        vdir = tmp / str(serving.version)
        vdir.mkdir()
        (tmp / "config.pbtxt").write_text(config_text(model_config(contract, serving, target)))
        if target == "cpu":
            write_version_files(vdir, onnx_path, contract.checkpoint_sha256)
        elif target in ("onnxruntime-trt", "openvino"):
            shutil.copyfile(onnx_path, vdir / "model.onnx")
        else:  # tensorrt: the plan is built on the target GPU from model.onnx by the caller's build_engine.sh
            if "build_engine.sh" not in (extra_files or {}):
                raise ValueError("the tensorrt target needs its build_engine.sh (export/tensorrt_build.py) in "
                                 "extra_files")
            shutil.copyfile(onnx_path, tmp / "model.onnx")  # input of build_engine.sh, outside the version folder
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
            if name.endswith(".sh"):
                (tmp / name).chmod(0o755)

    final = _swap_in(repo, MODEL_NAME, fill)
    if target == "cpu":
        write_drain_folder(repo)
    return final


def remove_scorer_folder(repo: Path) -> bool:
    """Remove `<repo>/sketchygan_score/` left by an earlier export (a repository exported without a scorer must not
    serve a stale one, perhaps of other classes); True if there was one."""
    folder = Path(repo) / SCORER_NAME
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def write_scorer_folder(repo: Path, contract: ScorerContract, onnx_path: Path, max_batch_size: int,
                        extra_files: dict[str, str] | None = None, target: str = "cpu") -> Path:
    """Write `<repo>/sketchygan_score/` (config, score.onnx as model.onnx, and on `cpu` model.py) atomically."""

    def fill(tmp: Path) -> None:
        vdir = tmp / "1"
        vdir.mkdir()
        (tmp / "config.pbtxt").write_text(config_text(scorer_model_config(contract, max_batch_size, target=target)))
        shutil.copyfile(onnx_path, vdir / "model.onnx")
        if target == "cpu":
            shutil.copyfile(Path(__file__).with_name("score_model.py"), vdir / "model.py")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)

    return _swap_in(repo, SCORER_NAME, fill)


def exported_onnx(repository: str | Path) -> Path:
    """The generator's ONNX of an exported CPU repository (what the benchmarks serve and measure), or ValueError
    saying it is missing and how to make it."""
    onnx = Path(repository) / MODEL_NAME / "1" / "model.onnx"
    if not onnx.is_file():
        raise ValueError(f"--repository {repository}: no exported {MODEL_NAME}/1/model.onnx in it (run `make export` "
                         "first)")
    return onnx
