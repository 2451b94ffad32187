"""Start-up calibration pieces that need no server: the fit, the derivation of limits from measured costs, the
machine facts, the deployment's runtime, and the served copy of the repository (serving/calibrate.py,
serving/calibrate.apply_plan)."""
import dataclasses
import json

import pytest

from serving.calibrate import apply_plan, write_served_repository
from serving.machine import Machine, cgroup_quota_cores
from serving.measure import Cost, fit, layouts
from serving.plan import MIN_QUEUE, Plan, derive
from serving.process import parse_cpus
from triton_repo.config_reader import parse_config


def _cost(per_image_ms: float, overhead_ms: float = 1.0, runtime: str = "openvino", instances: int = 2,
          threads: int = 1) -> Cost:
    return Cost(runtime, instances, threads, per_image_ms / 1e3, overhead_ms / 1e3)


def test_fit_recovers_a_line_and_never_a_negative_overhead():
    a, b = fit([(n, 0.004 * n + 0.002) for n in (1, 2, 4, 8)])
    assert a == pytest.approx(0.004) and b == pytest.approx(0.002)
    a, b = fit([(1, 0.001), (2, 0.004), (4, 0.010)])  # a line through these crosses below zero at n = 0
    assert b == 0.0 and a > 0
    assert fit([(4, 0.02)]) == (pytest.approx(0.005), 0.0)


@pytest.mark.parametrize("per_image_ms", [2.0, 5.0, 15.0, 45.0])
def test_derived_limits_keep_a_request_inside_the_budget_at_any_speed(per_image_ms):
    """Whatever the machine's speed: a batch fits a quarter of the budget (or is a single image); a caller whose
    deadline is the budget and who sends it less the compute reserve as its timeout, waits that long, then the batch
    ahead of it, then its own, still finishes within the budget; and a request that names no timeout is refused
    only by a full queue: the default timeout covers a full queue of the largest requests."""
    budget = 0.3
    plan = derive([_cost(per_image_ms)], budget, max_batch_size=32)
    batch = plan.batch_s(plan.batch_limit)
    assert plan.batch_limit == 1 or batch <= budget / 4
    assert plan.batch_limit == 32 or plan.batch_s(plan.batch_limit + 1) > budget / 4  # the largest that fits
    assert plan.queue_share_s + 2 * batch <= budget + 1e-9 or plan.queue_share_s == budget / 4
    assert plan.compute_reserve_s == pytest.approx(2 * batch)
    assert budget - plan.compute_reserve_s <= plan.queue_share_s + 1e-9  # what such a caller sends fits the share
    largest = plan.per_image_s * 32 + plan.overhead_s * -(-32 // plan.batch_limit)
    assert plan.queue_timeout_us / 1e6 == pytest.approx(plan.max_queue_size * largest / 2, rel=1e-6)
    assert plan.queue_timeout_us / 1e6 > 30 * budget  # never a per-image wait: hundreds of batches of work
    assert plan.rate_rps == pytest.approx(2 * plan.batch_limit / batch, rel=0.01)
    assert plan.max_queue_size >= MIN_QUEUE


def test_a_slower_machine_gets_smaller_batches_and_a_lower_rate():
    fast, slow = derive([_cost(4.0)], 0.3, 32), derive([_cost(12.0)], 0.3, 32)
    assert slow.batch_limit < fast.batch_limit and slow.rate_rps < fast.rate_rps / 2


def test_the_fastest_runtime_and_layout_wins_and_near_ties_keep_single_threaded_instances():
    ort, ov = _cost(10.0, runtime="onnxruntime"), _cost(5.0)
    assert derive([ort, ov], 0.3, 32).runtime == "openvino"
    two_by_one, one_by_two = _cost(5.0), _cost(2.6, instances=1, threads=2)  # 1x2 only ~4 % faster
    plan = derive([two_by_one, one_by_two], 0.3, 32)
    assert (plan.instances, plan.threads) == (2, 1)
    plan = derive([two_by_one, _cost(1.5, instances=1, threads=2)], 0.3, 32)  # clearly faster
    assert (plan.instances, plan.threads) == (1, 2)


def test_derive_refuses_nothing_measured_or_a_nonsense_budget():
    with pytest.raises(RuntimeError, match="no runtime could be measured"):
        derive([], 0.3, 32)
    with pytest.raises(ValueError, match="budget must be positive"):
        derive([_cost(5.0)], 0.0, 32)


def test_layouts_follow_the_usable_cores():
    assert layouts(1.0) == [(1, 1)]
    assert layouts(2.0) == [(2, 1), (1, 2)]
    assert layouts(1.5) == [(2, 1), (1, 2)]  # a 1.5-core quota: two instances share it
    assert layouts(0.5) == [(1, 1)]


def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota_cores(v2) is None
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota_cores(v2) == 1.5
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota_cores(tmp_path / "v1") == 0.5
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota_cores(tmp_path / "v1") is None
    assert cgroup_quota_cores(tmp_path / "none") is None


def test_usable_cores_are_the_affinity_capped_by_the_quota():
    assert Machine("cpu", "avx2", (0, 1), None, "x").usable_cores == 2.0
    assert Machine("cpu", "avx2", (0, 1), 1.25, "x").usable_cores == 1.25
    assert Machine("cpu", "avx2", (0,), 4.0, "x").usable_cores == 1.0


def test_cpu_lists_parse_and_bad_ones_say_what_is_expected():
    assert parse_cpus("0") == (0,) and parse_cpus("0,1") == (0, 1) and parse_cpus("0-2,5") == (0, 1, 2, 5)
    assert parse_cpus("") is None and parse_cpus(None) is None
    with pytest.raises(ValueError, match="not like '0', '0,1' or '0-3'"):
        parse_cpus("first")


def test_plan_round_trips_through_json():
    plan = derive([_cost(5.0)], 0.3, 32, Machine("cpu", "avx2", (0, 1), None, "abc"), measure_s=3.2)
    assert Plan.from_json(plan.to_json()) == plan
    assert "openvino f32 2x1, batches <=" in plan.summary() and "budget 300 ms" in plan.summary()


def test_served_repository_carries_the_plan_and_leaves_the_export_untouched(exported, tmp_path):
    _, repo, _ = exported
    source_cfg = (repo / "sketchygan" / "config.pbtxt").read_text()
    plan = dataclasses.replace(derive([_cost(5.0)], 0.3, 16), batch_limit=3, queue_timeout_us=123_000,
                               max_queue_size=300)
    served = write_served_repository(repo, tmp_path / "served", plan)
    assert (repo / "sketchygan" / "config.pbtxt").read_text() == source_cfg  # the hard-linked copy never wrote back
    cfg = parse_config((served / "sketchygan" / "config.pbtxt").read_text())
    src = parse_config(source_cfg)
    assert cfg.max_batch_size == src.max_batch_size  # the largest client request stays the contract's
    assert list(cfg.dynamic_batching.preferred_batch_size) == [3]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 0
    policy = cfg.dynamic_batching.default_queue_policy
    assert (policy.default_timeout_microseconds, policy.max_queue_size, policy.allow_timeout_override) == \
        (123_000, 300, True)
    assert [g.count for g in cfg.instance_group] == [plan.instances]
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["batch_limit"] == "3" and params["runtime"] == plan.runtime
    assert float(params["compute_reserve_s"]) == pytest.approx(plan.compute_reserve_s, rel=1e-4)
    assert json.loads(params["calibration"])["queue_timeout_us"] == 123_000
    assert params["class_names"] == {k: v.string_value for k, v in src.parameters.items()}["class_names"]
    assert (served / "sketchygan" / "1" / "model.onnx").stat().st_size == \
        (repo / "sketchygan" / "1" / "model.onnx").stat().st_size
    assert (served / "sketchygan_drain" / "config.pbtxt").is_file()


def test_apply_plan_refuses_a_non_cpu_target(exported):
    _, _, gpu = exported
    cfg = parse_config((gpu / "tensorrt" / "sketchygan" / "config.pbtxt").read_text())
    with pytest.raises(ValueError, match="calibration applies to the CPU target"):
        apply_plan(cfg, derive([_cost(5.0)], 0.3, 16))


def test_a_runtime_that_cannot_run_the_model_is_left_out_with_its_reason(exported):
    """What the measuring child does when a runtime fails (as OpenVINO's CPU plugin does on this graph under an
    AVX2 cap of oneDNN): the others are still measured, the failure is reported, not raised."""
    from serving.measure import run_measurements
    _, repo, _ = exported
    onnx = repo / "sketchygan" / "1" / "model.onnx"
    costs, failed = run_measurements(onnx, (32, 8, 4), 1.0, 0.3, seconds=0.5, only=("tvm", 1, 1))
    assert costs == [] and "unknown runtime 'tvm'" in failed["tvm"]
    costs, failed = run_measurements(onnx, (32, 8, 4), 1.0, 0.3, seconds=0.5, only=("onnxruntime", 1, 1),
                                     sizes=(1, 2))
    assert failed == {} and [c.runtime for c in costs] == ["onnxruntime"] and [n for n, _ in costs[0].points] == [1, 2]


def test_a_check_holds_within_the_tolerance_either_way_and_names_its_ratio():
    from serving.plan import CHECK_TOLERANCE, Check, still_holds
    plan = derive([_cost(5.0, 1.0)], 0.3, 16)
    planned = plan.batch_s(plan.batch_limit)
    for factor, holds in ((1.0, True), (CHECK_TOLERANCE * 0.99, True), (1 / CHECK_TOLERANCE / 0.99, True),
                          (CHECK_TOLERANCE * 1.01, False), (1 / CHECK_TOLERANCE / 1.01, False)):
        check = still_holds(plan, Cost("openvino", 2, 1, 0.0, 0.0, ((plan.batch_limit, planned * factor),)))
        assert check == Check(plan.batch_limit, planned * factor, planned)
        assert check.ratio == pytest.approx(factor) and check.holds == holds, (factor, check)
    assert still_holds(plan, Cost("openvino", 2, 1, 0.0, 0.0, ())) is None  # nothing timed: no verdict


def test_forget_removes_only_the_plan_that_was_checked(tmp_path):
    from serving.calibrate import forget
    plan = derive([_cost(5.0, 1.0)], 0.3, 16)
    cache = tmp_path / "plan.json"
    assert not forget(cache, plan)  # nothing stored
    cache.write_text(plan.to_json())
    assert not forget(cache, dataclasses.replace(plan, batch_limit=plan.batch_limit + 1)) and cache.exists()
    assert forget(cache, dataclasses.replace(plan, source="cached", measure_s=0.0)) and not cache.exists()


def test_the_openvino_cache_keeps_one_folder_per_model_and_only_the_most_recently_used(tmp_path):
    import os

    from serving.calibrate import openvino_cache
    root = tmp_path / "openvino-cache"
    folders = []
    for i in range(6):
        f = openvino_cache(root, f"{i:x}" * 64, keep=3)
        (f / "x.blob").write_bytes(b"blob")
        os.utime(f, (1000 + i, 1000 + i))  # used in this order
        folders.append(f)
    again = openvino_cache(root, "0" * 64, keep=3)  # the first model served again: kept, the oldest others go
    assert again == folders[0] and again.is_dir()
    assert sorted(d.name for d in root.iterdir()) == sorted(f.name for f in (folders[0], folders[4], folders[5]))


def test_the_runtime_is_the_deployments_and_a_stored_plan_of_another_runtime_is_not_served(exported, tmp_path):
    """The export's choice, or the operator's pin; never picked by a start (it decides the pixels)."""
    import os

    from serving.calibrate import CalibrationError, calibrate, deployment_runtime
    _, repo, _ = exported
    cfg = parse_config((repo / "sketchygan" / "config.pbtxt").read_text())
    assert deployment_runtime(cfg) == "onnxruntime" and deployment_runtime(cfg, "openvino") == "openvino"
    with pytest.raises(CalibrationError, match="unknown runtime 'tvm'"):
        deployment_runtime(cfg, "tvm")
    del cfg.parameters["runtime"]
    with pytest.raises(CalibrationError, match="names none"):
        deployment_runtime(cfg)
    core = (sorted(os.sched_getaffinity(0))[0],)
    cache = tmp_path / "plan.json"
    first = calibrate(repo, cpus=core, seconds=0.5, cache=cache)
    assert first.runtime == "onnxruntime" and {c["runtime"] for c in first.costs} == {"onnxruntime"}
    pinned = calibrate(repo, cpus=core, seconds=0.5, cache=cache, runtime="openvino")
    assert pinned.source == "measured" and pinned.runtime == "openvino"
    assert calibrate(repo, cpus=core, seconds=0.5, cache=cache, runtime="openvino").source == "cached"


def test_one_type_carries_the_limits_export_writes_and_calibration_writes(exported):
    """Export's defaults and a calibration's plan enter config.pbtxt through the same writer, and read back as the
    same `Limits` (what `--calibrate off` serves)."""
    from triton_repo.config import model_config
    from triton_repo.config_reader import contract_from_config, read_limits
    from triton_repo.serving_config import Limits, ServingConfig
    _, repo, _ = exported
    src = parse_config((repo / "sketchygan" / "config.pbtxt").read_text())
    contract = contract_from_config(src)
    chosen = Limits("onnxruntime", instances=1, threads=2, batch_limit=5, queue_timeout_us=70_000, max_queue_size=9)
    exported_cfg = model_config(contract, ServingConfig(max_batch_size=16, limits=chosen), "cpu")
    assert read_limits(exported_cfg) == chosen
    assert read_limits(model_config(contract, ServingConfig(max_batch_size=16), "cpu")) == \
        dataclasses.replace(Limits(), batch_limit=16)  # no limit below the request cap: batches of what is queued
    plan = dataclasses.replace(derive([_cost(5.0)], 0.3, 16), runtime="onnxruntime")
    assert read_limits(apply_plan(src, plan)) == plan.limits
    with pytest.raises(ValueError, match="Limits.instances must be >= 1, got 0"):
        Limits(instances=0)
