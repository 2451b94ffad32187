"""The chaos report as markdown (`python -m loadtest chaos` writes it beside chaos.json): per CPU condition the
serving plan, one row per fault, the overload table with each kind's target, the soak's memory."""
from __future__ import annotations

from serving.plan import Plan
from triton_repo.tables import md_table

TARGETS = {"client": 0.7, "plain": 0.5}  # goodput / capacity under 128 x 0.5 s callers (the service's targets)
LABELS = {"client": "project client", "plain": "plain tritonclient, timeout sent, retry at once",
          "plain-deadline-only": "plain tritonclient, gRPC deadline only, retry at once"}
NOBODY_MAX = 0.10  # at most this share of computed images may go to callers who had gone


def overload_rows(o: dict) -> list[list]:
    """One markdown row per overload kind of one condition, with whether it meets its target."""
    rows = []
    for kind, label in LABELS.items():
        if kind not in o:
            continue
        k = o[kind]
        ratio, nobody = k["goodput_over_capacity"], k["computed_for_nobody"]
        target = TARGETS.get(kind)
        met = ratio is not None and ratio >= (target or 0.0) and (nobody or 0.0) <= NOBODY_MAX
        rows.append([o["condition"], label, k["capacity_rps"], k["goodput_rps"], ratio,
                     f"≥ {target}" if target else "none (patient by the server's policy)", nobody,
                     f"{k['latency_2s_after_ms']} (idle {o['idle_latency_ms']})", k["average_batch"],
                     ("yes" if met else "**no**") if target else "—"])
    return rows


OVERLOAD_HEADER = ["condition", "128 callers, 0.5 s deadlines", "capacity (req/s, 16 patient callers)",
                   "goodput (req/s)", "goodput / capacity", "target", "computed for callers who had gone",
                   "latency 2 s after (ms)", "avg batch", "met"]


def markdown(report: dict) -> str:
    """The chaos report as markdown: per condition, the plan, one row per fault, the overload table, the soak."""
    if "conditions" in report:
        return "\n".join(f"### {name}\n\n" + markdown(r) for name, r in report["conditions"].items())
    text = ""
    if report.get("plan"):
        text += Plan(**report["plan"]).summary() + "\n\n"
    rows = [[r["fault"], r["client_failures"], r["client_calls"], r["recovery_s"],
             f"{r['goodput_before_rps']} → {r['goodput_during_rps']}",
             ", ".join(f"{k} {v}" for k, v in sorted(r["wire"].items()))] for r in report["results"]]
    text += "\n".join(md_table(["fault", "client-visible failures", "calls", "recovery (s)",
                                "goodput before → during (req/s)", "raw answers on the wire (plain callers)"],
                               rows)) + "\n"
    if "overload" in report:
        text += "\n" + "\n".join(md_table(OVERLOAD_HEADER, overload_rows(report["overload"]))) + "\n"
        f = report["overload"].get("flood")
        if f:
            text += "\n" + "\n".join(md_table(
                ["open-loop flood, no deadlines", "capacity (req/s)", "offered (req/s)", "answered (req/s)",
                 "answered p50 / p99 / max (ms)", "refused", "refused p50 / p99 (ms)", "most queued", "queue bound"],
                [[report["overload"]["condition"], f["capacity_rps"], f["offered_rps"], f["answered_rps"],
                  " / ".join(str(f["answered_ms"][k]) for k in ("p50", "p99", "max")),
                  sum(v for k, v in f["outcomes"].items() if k != "OK"),
                  " / ".join(str(f["refused_ms"][k]) for k in ("p50", "p99")), f["max_pending"],
                  f["max_queue_size"]]])) + "\n"
    if "soak" in report:
        s = report["soak"]
        text += f"\nSoak ({s['seconds']:.0f} s, calls {s['calls']}), RSS MiB:\n\n" + "\n".join(md_table(
            ["process", "start", "after 60 s", "end", "growth after 60 s"],
            [[k, v["start"], v["after_60s"], v["end"], v["growth_after_60s"]] for k, v in s["rss_mib"].items()])) \
            + "\n"
    return text
