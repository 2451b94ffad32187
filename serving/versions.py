"""Model versions of a running tritonserver, switched under load with Triton's own mechanisms: explicit model
control behind the restricted key (serving/server.py, `model_control`) and the generator's `version_policy`.

A rollout of a staged version (serving/rollout.py stages it: exported, contract, a parity reference):
1. the candidate check: the staged files loaded as a separate model (`sketchygan_candidate`), its answers to the
   reference inputs compared with the reference through the running server, then unloaded: no caller of
   `sketchygan` has seen it;
2. its folder moved in as version N+1 beside N, the policy set to [N, N+1], the model loaded: Triton loads N+1 only
   (since 24.08 a version whose folder and config are unchanged is not reloaded, and `version_policy` is left out of
   the config comparison). From when N+1 is ready, every request that names no version gets it: Triton answers those
   with the newest ready version;
3. the policy set to [N+1], loaded again: Triton unloads N once the requests it accepted are answered.
A canary stops after step 2 (both versions served; the gateway sends a share of its calls to the new one, pinned by
version) until `promote` (step 3) or `rollback` (the new one unloaded). A rollback is otherwise steps 2-3 towards the
previous version folder, which stays on disk. Nothing here touches the model
folder's other files: Triton reloads every loaded version when a file beside the version folders changes.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triton_repo.config_reader import config_text, contract_from_config, parse_config
from triton_repo.contract import CHECKPOINT_FILE, MODEL_NAME
from triton_repo.folders import compile_python_files
from triton_repo.rollout_files import CONTRACT_FILE, PARITY_FILE, VERSION_FILES, contract_fields, contract_mismatch

log = logging.getLogger("sketchygan.versions")

CANDIDATE = MODEL_NAME + "_candidate"
STAGED_FILES = (*VERSION_FILES, PARITY_FILE, CONTRACT_FILE)
MIN_PSNR_DB = 40.0  # served vs in-process, same runtime and precision: the export gate's bar
POLICY_LOAD_S = 30.0  # the longest wait on a load that only takes versions out (a load with nothing to create)


class RolloutError(RuntimeError):
    """A rollout or rollback refused or failed; the version that served before still serves."""


@dataclass
class Versions:
    """The generator's versions in the repository a running server serves, and the steps that switch them."""

    server: object  # serving.server.TritonServer, started with model_control
    load_timeout_s: float = 120.0

    @property
    def repo(self) -> Path:
        return Path(self.server.config.repository)

    @property
    def folder(self) -> Path:
        return self.repo / MODEL_NAME

    def _config(self):
        return parse_config((self.folder / "config.pbtxt").read_text())

    def served(self) -> list[int]:
        """The versions the config serves (its `version_policy`)."""
        return sorted(self._config().version_policy.specific.versions)

    def on_disk(self) -> list[int]:
        return sorted(int(p.name) for p in self.folder.iterdir() if p.is_dir() and p.name.isdigit())

    def checkpoint(self, version: int) -> str:
        path = self.folder / str(version) / CHECKPOINT_FILE
        return path.read_text().strip() if path.is_file() else ""

    def describe(self) -> dict:
        """What `rollout status` shows: served versions, every version kept on disk and its checkpoint."""
        return {"served": self.served(), "on_disk": {v: self.checkpoint(v) for v in self.on_disk()}}

    # ------------------------------------------------------------------ the steps

    def check_staged(self, staged: Path) -> dict:
        """Refuse a staged folder that misses a file or whose contract differs from the running model's."""
        missing = [f for f in STAGED_FILES if not (staged / f).is_file()]
        if missing:
            raise RolloutError(f"the staged version {staged} lacks {missing}")
        new = json.loads((staged / CONTRACT_FILE).read_text())
        running = contract_fields(contract_from_config(self._config()))
        if why := contract_mismatch(running, new):
            raise RolloutError(f"refused: {why}; nothing changed")
        return new

    def candidate_check(self, staged: Path, progress=log.info) -> dict:
        """Load the staged files as `sketchygan_candidate`, compare its answers with the in-process reference,
        unload it. Raises RolloutError (with the figures) when they differ."""
        folder = self.repo / CANDIDATE
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "1").mkdir(parents=True)
        cfg = self._config()
        cfg.name = CANDIDATE
        for group in cfg.instance_group:  # one model process is enough to check answers (and half the cost)
            group.count = 1
        del cfg.version_policy.specific.versions[:]
        cfg.version_policy.specific.versions.append(1)
        (folder / "config.pbtxt").write_text(config_text(cfg))
        for f in VERSION_FILES:
            shutil.copyfile(staged / f, folder / "1" / f)
        client = self.server.client()
        try:
            t0 = time.monotonic()
            client.load_model(CANDIDATE, headers=self.server.admin_headers, client_timeout=self.load_timeout_s)
            progress(f"candidate loaded in {time.monotonic() - t0:.1f} s; checking its answers")
            result = parity(client, CANDIDATE, "1", staged / PARITY_FILE)
        except Exception as e:  # noqa: BLE001 — any failure to load or answer refuses the candidate
            raise RolloutError(f"refused: the new version did not load or answer in the running server: {e}; "
                               "nothing changed") from None
        finally:
            try:
                client.unload_model(CANDIDATE, headers=self.server.admin_headers, client_timeout=30)
            except Exception as e:  # noqa: BLE001
                log.warning("unloading the candidate failed: %s", e)
            client.close()
            shutil.rmtree(folder, ignore_errors=True)
        if not result["passed"]:
            raise RolloutError(f"refused: the running server's answers differ from the exported model's "
                               f"({result['psnr_db']} dB < {MIN_PSNR_DB} dB, or a constant image); nothing changed")
        return result

    def add(self, staged: Path) -> int:
        """Move the staged files in as the next version number (kept beside the others); returns it."""
        version = max(self.on_disk(), default=0) + 1
        tmp = self.folder / f".incoming-{version}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in VERSION_FILES:
            shutil.copyfile(staged / f, tmp / f)
        compile_python_files(tmp)  # before Triton first sees the folder (triton_repo/folders.py says why)
        tmp.rename(self.folder / str(version))
        return version

    def switch(self, to: int, progress=log.info) -> dict:
        """Serve version `to` instead of the current one(s): loaded beside them, then they are unloaded once their
        accepted requests are answered. Returns the timings."""
        t0 = time.monotonic()
        loaded = self.load_beside(to, progress)
        return {**loaded, "switch_s": self.retire(to, progress, since=t0)["switch_s"]}

    def load_beside(self, to: int, progress=log.info) -> dict:
        """Load version `to` beside the served one(s) (a canary, or the first half of a switch); from when it is
        ready, requests that name no version get the newest of them."""
        old = self.served()
        if to in old:
            raise RolloutError(f"version {to} is already served (served: {old})")
        if not (self.folder / str(to)).is_dir():
            raise RolloutError(f"version {to} is not in {self.folder}")
        client = self.server.client()
        t0 = time.monotonic()
        try:
            self._policy(sorted({*old, to}))
            try:
                client.load_model(MODEL_NAME, headers=self.server.admin_headers, client_timeout=self.load_timeout_s)
                if not client.is_model_ready(MODEL_NAME, str(to)):
                    raise RolloutError(f"version {to} loaded but is not ready")
            except Exception as e:  # noqa: BLE001 — back to the old policy: the old version never stopped
                self._policy(old)
                try:
                    client.load_model(MODEL_NAME, headers=self.server.admin_headers,
                                      client_timeout=self.load_timeout_s)
                except Exception as e2:  # noqa: BLE001
                    log.error("restoring the version policy %s failed: %s", old, e2)
                raise RolloutError(f"version {to} failed to load ({e}); version(s) {old} still serve") from None
        finally:
            client.close()
        loaded = time.monotonic() - t0
        progress(f"version {to} ready beside {old} after {loaded:.1f} s")
        return {"from": old, "to": to, "load_s": round(loaded, 2)}

    def retire(self, keep: int, progress=log.info, since: float | None = None) -> dict:
        """Serve `keep` alone: every other served version is unloaded once the requests it accepted are answered."""
        old = self.served()
        if keep not in old:
            raise RolloutError(f"version {keep} is not served (served: {old})")
        t0 = time.monotonic() if since is None else since
        client = self.server.client()
        try:
            self._policy([keep])
            try:  # only the policy changes: nothing is created, so the call is short (the state decides, below)
                client.load_model(MODEL_NAME, headers=self.server.admin_headers,
                                  client_timeout=min(POLICY_LOAD_S, self.load_timeout_s))
            except Exception as e:  # noqa: BLE001 — a deadline does not cancel the load in the server: judge by state
                self._confirm_alone(keep, old, e)  # waits for the others' unload itself
            else:
                left = [v for v in old if v != keep and not _unloaded(client, v)]
                if left:
                    log.warning("version(s) %s still loaded after the switch", left)
        finally:
            client.close()
        took = time.monotonic() - t0
        progress(f"version(s) {[v for v in old if v != keep]} unloaded; version {keep} serves alone "
                 f"({took:.1f} s in all)")
        return {"from": old, "to": keep, "switch_s": round(took, 2)}

    def _confirm_alone(self, keep: int, old: list[int], error: Exception) -> None:
        """The load that takes the other versions out failed on the caller's side (`error`, e.g. its deadline passed):
        what counts is the server's state. Returns once `keep` is ready and the others are unloaded; else
        RolloutError naming both, with tritonserver's log tail in the serving log."""
        log.warning("the load that serves version %s alone answered %s; checking what the server serves", keep, error)
        client = self.server.client()  # a fresh channel: the old one may be what failed
        try:
            others = [v for v in old if v != keep]
            if client.is_model_ready(MODEL_NAME, str(keep), client_timeout=10) and \
                    all(_unloaded(client, v, self.load_timeout_s) for v in others):
                log.warning("version %s serves alone all the same", keep)
                return
            states = {v: client.is_model_ready(MODEL_NAME, str(v), client_timeout=10) for v in old}
        except Exception as e:  # noqa: BLE001
            states = f"unknown ({e})"
        finally:
            client.close()
        log.error("tritonserver's log tail:\n%s", self.server.log_tail(40))
        raise RolloutError(f"serving version {keep} alone failed ({error}); ready per version: {states}")

    def perform(self, op: str, req: dict, progress=log.info) -> dict:
        """One operation of the control socket on the running server: `rollout` of a staged folder (`req["staged"]`,
        with `req["canary"]`: stop with both versions served), `promote` a canary, `rollback` (a canary's new version
        unloaded, or the previous version back). RolloutError when it is refused; what served before still serves."""
        if op not in ("rollout", "promote", "rollback"):
            raise RolloutError(f"unknown operation {op!r}; expected rollout, promote or rollback")
        if op == "rollout":
            staged = Path(str(req.get("staged", "")))
            if len(self.served()) > 1:
                raise RolloutError(f"a canary is on (versions {self.served()} served): promote or roll "
                                   "it back first; nothing changed")
            self.check_staged(staged)
            progress("the new version's contract matches the running model's")
            check = self.candidate_check(staged, progress)
            progress(f"the candidate answers as exported: {check['psnr_db']} dB on {check['images']} images")
            new = self.add(staged)
            step = self.load_beside if req.get("canary") else self.switch
            result = {**step(new, progress), "parity": check}
        elif op == "promote":
            served = self.served()
            if len(served) < 2:
                raise RolloutError(f"no canary to promote: version {served[-1]} serves alone")
            result = self.retire(served[-1], progress)
        else:  # rollback: a canary's new version unloaded, or the previous version back
            to = self.previous()
            served = self.served()
            result = self.retire(to, progress) if to in served else self.switch(to, progress)
        return result

    def previous(self) -> int:
        """The version a rollback returns to: during a canary the older of the two served, else the newest one on
        disk below the one served."""
        served = self.served()
        if len(served) > 1:
            return served[0]
        current = served[-1]
        older = [v for v in self.on_disk() if v < current]
        if not older:
            raise RolloutError(f"nothing to roll back to: version {current} is the oldest in {self.folder}")
        return older[-1]

    def _policy(self, versions: list[int]) -> None:
        """Rewrite only config.pbtxt's version_policy (atomically): Triton compares the rest to decide reloads."""
        cfg = self._config()
        del cfg.version_policy.specific.versions[:]
        cfg.version_policy.specific.versions.extend(versions)
        path = self.folder / "config.pbtxt"
        tmp = path.with_name(".config.pbtxt.tmp")
        tmp.write_text(config_text(cfg))
        tmp.replace(path)


def _unloaded(client, version: int, timeout_s: float = 30.0) -> bool:
    """Wait until Triton no longer serves `version` (its accepted requests answered); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not client.is_model_ready(MODEL_NAME, str(version)):
                return True
        except Exception:  # noqa: BLE001 — "not found" is unloaded
            return True
        time.sleep(0.05)
    return False


def parity(client, model: str, version: str, reference: Path) -> dict:
    """Send the reference inputs to `model`/`version` through the running server; PSNR against the reference."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype
    ref = np.load(reference)
    inputs = []
    for name in ("SKETCH", "CLASS_ID", "NOISE"):
        arr = np.ascontiguousarray(ref[name])
        inputs.append(grpcclient.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype)))
        inputs[-1].set_data_from_numpy(arr)
    got = client.infer(model, inputs, model_version=version, client_timeout=60).as_numpy("IMAGE")
    want = ref["IMAGE"]
    mse = float(np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2))
    db = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    constant = any(float(img.std()) == 0.0 for img in got)
    return {"images": int(len(got)), "psnr_db": round(db, 2) if np.isfinite(db) else "inf",
            "max_abs_diff": int(np.abs(got.astype(np.int16) - want.astype(np.int16)).max()),
            "passed": bool(db >= MIN_PSNR_DB and not constant)}
