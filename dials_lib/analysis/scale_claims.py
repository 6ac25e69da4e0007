"""The paper's claims that only several sizes can test (Figures 5 and 6 at 4 to 100 agents, appendix D.1-D.2,
Table 3), each a function from run records to rows of evidence with a computed verdict (`claims.CLAIM_COLUMNS`).

- `untrained_gap_grows`: untrained-DIALS falls further behind DIALS as the number of agents grows (the paper's
  traffic gap: 42 at 4 agents, 59 at 100);
- `gs_less_stable`: GS agents "suffer frequent performance drops" where DIALS agents "converge steadily"
  (appendix D.1), measured as the drops of each run's learning curve (`run_stability`) and the spread of the final
  returns across seeds;
- `gap_larger_in_warehouse`: DIALS's lead over GS, relative to GS's return, is larger in the warehouse than in
  traffic at the same size;
- `memory_as_in_table_3`: with one process per agent DIALS's total memory grows with the agents while GS's grows
  slowly;
- `f_claims_as_stated`: the F ablation read as the paper's text states it, each at the agent count it was run at.

The claims that hold at every size (DIALS matches GS, untrained-DIALS is worse, DIALS against the hand-coded
controller) are `claims.dials_matches_gs`, `claims.untrained_is_worse` and `claims.dials_reaches_hand_coded` with
every size of the preset. Every comparison of trained methods is "not measured" unless they learned at the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from dials_lib import paper
from dials_lib.analysis import verdicts
from dials_lib.analysis.claims import (
    claim_frame,
    claim_row,
    learning_of,
    mean_text,
    missing_side,
    paper_row,
    returns_of,
)
from dials_lib.analysis.plans import RUN_COLUMNS, main_comparison_runs
from dials_lib.analysis.report import METHOD_LABELS
from dials_lib.analysis.stats import bootstrap_ci, bootstrap_statistic
from dials_lib.analysis.verdicts import Verdict
from dials_lib.hyperparameters import ENV_NAMES
from dials_lib.paper import read_paper_table

DROP_SHARE_NOTE = ("drops = the falls of a run's curve between consecutive evaluations, summed, over the curve's "
                   "range (0: never falls; 1: falls back as far as it rose)")
"""How `run_stability` measures a learning curve's drops, as the claim rows state it."""


def _learned(main: pd.DataFrame, first: pd.DataFrame, env: str, sizes: Iterable[int],
             simulators: Iterable[str]) -> Verdict | None:
    """'not measured' unless every simulator learned at every size (`verdicts.unless_learned`), else None."""
    return verdicts.unless_learned({f"{METHOD_LABELS[s]} at {n} agents": learning_of(main, first, env, n, s)
                                    for n in sizes for s in simulators})


def untrained_gap_grows(finals: pd.DataFrame, starts: pd.DataFrame, sizes: Mapping[str, Iterable[int]],
                        paper_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """DIALS minus untrained-DIALS final return at the largest size against the smallest, per environment: does the
    gap grow with the number of agents? A difference of differences, its interval over seeds (each of the four
    groups resampled apart). "Not measured" with fewer than two sizes or unless DIALS learned at both."""
    results = read_paper_table("results") if paper_results is None else paper_results
    main, first, rows = main_comparison_runs(finals), main_comparison_runs(starts), []
    for env in [e for e in ENV_NAMES if e in sizes]:
        ordered = sorted(sizes[env])
        small, large = ordered[0], ordered[-1]
        pick = {(n, s): returns_of(main, env, n, s) for n in (small, large) for s in ("dials", "untrained-dials")}
        gaps = {n: f"{pick[(n, 'dials')].mean() - pick[(n, 'untrained-dials')].mean():.4g}"
                if len(pick[(n, "dials")]) and len(pick[(n, "untrained-dials")]) else "no runs"
                for n in (small, large)}
        p_small, p_large = paper_row(results, env, small), paper_row(results, env, large)
        verdict = (Verdict("not measured", "the preset runs a single size") if small == large else None) \
            or missing_side(*pick.values()) or _learned(main, first, env, (small, large), ("dials",))
        if verdict is None:  # growth = gap(large) - gap(small); clearly_worse on its negative
            growth = bootstrap_statistic([pick[(small, "dials")], pick[(small, "untrained-dials")],
                                          pick[(large, "dials")], pick[(large, "untrained-dials")]],
                                         lambda m: (m[0] - m[1]) - (m[2] - m[3]))
            verdict = verdicts.clearly_worse(*growth)
        rows.append(claim_row(
            "untrained-DIALS falls further behind DIALS with more agents", f"{env}, {small} -> {large} agents",
            f"DIALS minus untrained-DIALS: {gaps[small]} at {small}, {gaps[large]} at {large} agents "
            "(rule: gap at the smaller size minus gap at the larger)",
            f"{p_small['DIALS'] - p_small['untrained_DIALS']:g} at {small}, "
            f"{p_large['DIALS'] - p_large['untrained_DIALS']:g} at {large} agents", verdict))
    return claim_frame(rows)


def run_stability(metrics: pd.DataFrame, margin: float = verdicts.LEARNING_MARGIN) -> pd.DataFrame:
    """One row per run: `drop_share`, the falls of its learning curve between consecutive evaluations summed over
    the curve's range (0 for a curve that never falls), `n_drops`, how many falls exceed `margin` of |start return|,
    and its final return."""
    rows = []
    for key, run in metrics.sort_values("timestep").groupby(list(RUN_COLUMNS), dropna=False, sort=False):
        curve = run["mean_return"].to_numpy(dtype=float)
        falls = np.clip(curve[:-1] - curve[1:], 0, None)
        spread = curve.max() - curve.min()
        rows.append({**dict(zip(RUN_COLUMNS, key, strict=True)),
                     "drop_share": float(falls.sum() / spread) if spread > 0 else 0.0,
                     "n_drops": int((falls > margin * abs(curve[0])).sum()), "final": float(curve[-1])})
    return pd.DataFrame(rows)


def stability_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per environment, size and simulator of the main comparison: mean drop share and drops over seeds, and the
    spread (standard deviation, ddof 1) of the final returns across seeds."""
    runs = main_comparison_runs(run_stability(metrics))
    return runs.groupby(["env", "n_agents", "simulator"]).agg(
        seeds=("final", "size"), drop_share=("drop_share", "mean"), drops=("n_drops", "mean"),
        final_spread=("final", "std")).reset_index()


def gs_less_stable(metrics: pd.DataFrame, sizes: Mapping[str, Iterable[int]]) -> pd.DataFrame:
    """GS's learning curves fall more than DIALS's (drop share, interval over seeds) and GS's final returns spread
    more across seeds, per environment and size. Reproduced when both hold (the drops clearly), partly when one
    does. "Not measured" unless both learned."""
    main = main_comparison_runs(metrics)
    finals = main.loc[main.groupby(list(RUN_COLUMNS), dropna=False)["timestep"].idxmax()]
    first = main[main["timestep"] == 0]
    stability = main_comparison_runs(run_stability(metrics))
    rows = []
    for env in [e for e in ENV_NAMES if e in sizes]:
        for n in sizes[env]:
            pick = {s: stability[(stability["env"] == env) & (stability["n_agents"] == n)
                                 & (stability["simulator"] == s)] for s in ("gs", "dials")}
            share = {s: pick[s]["drop_share"].to_numpy() for s in pick}
            spread = {s: float(pick[s]["final"].std()) if len(pick[s]) > 1 else float("nan") for s in pick}
            verdict = missing_side(*share.values()) or _learned(finals, first, env, (n,), ("gs", "dials"))
            if verdict is None:
                drops = verdicts.clearly_worse(*bootstrap_ci(share["dials"], share["gs"]))
                more_spread = spread["gs"] > spread["dials"]
                verdict = verdicts.all_of({
                    "drops (DIALS minus GS)": drops,
                    "spread": Verdict("reproduced" if more_spread else "not reproduced",
                                      f"GS {spread['gs']:.3g} {'>' if more_spread else '<='} DIALS "
                                      f"{spread['dials']:.3g}")})
            rows.append(claim_row(
                "GS learns less steadily than DIALS", f"{env}, {n} agents",
                f"drop share GS {mean_text(share['gs'])} vs DIALS {mean_text(share['dials'])}; final-return spread "
                f"over seeds GS {spread['gs']:.3g} vs DIALS {spread['dials']:.3g} ({DROP_SHARE_NOTE})",
                "GS agents 'suffer frequent performance drops and often get stuck in local minima', DIALS agents "
                "'converge steadily' (appendix D.1)", verdict))
    return claim_frame(rows)


def gap_larger_in_warehouse(finals: pd.DataFrame, starts: pd.DataFrame, sizes: Mapping[str, Iterable[int]],
                            paper_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """DIALS's lead over GS as a share of GS's return, warehouse minus traffic, at each size both environments
    ran; its interval over seeds. "Not measured" unless DIALS and GS learned in both environments."""
    results = read_paper_table("results") if paper_results is None else paper_results
    main, first, rows = main_comparison_runs(finals), main_comparison_runs(starts), []
    common = sorted(set(sizes.get("traffic", ())) & set(sizes.get("warehouse", ())))
    for n in common:
        pick = [returns_of(main, env, n, s) for env in ("warehouse", "traffic") for s in ("dials", "gs")]
        verdict = missing_side(*pick) or next(
            (v for env in ("warehouse", "traffic") if (v := _learned(main, first, env, (n,), ("gs", "dials")))),
            None)
        lead = {env: (p["DIALS"] - p["GS"]) / abs(p["GS"])
                for env, p in ((e, paper_row(results, e, n)) for e in ("warehouse", "traffic"))}
        ours = "no runs"
        if not any(len(g) == 0 for g in pick):
            ours = ", ".join(f"{env} {(d.mean() - g.mean()) / abs(g.mean()):+.1%}"
                             for env, d, g in (("warehouse", pick[0], pick[1]), ("traffic", pick[2], pick[3])))
        if verdict is None:  # traffic's relative lead minus the warehouse's: clearly below 0?
            verdict = verdicts.clearly_worse(*bootstrap_statistic(
                pick, lambda m: (m[2] - m[3]) / np.abs(m[3]) - (m[0] - m[1]) / np.abs(m[1])))
        rows.append(claim_row(
            "DIALS's lead over GS is larger in the warehouse than in traffic", f"both, {n} agents",
            f"(DIALS - GS) / |GS|: {ours} (rule: traffic's minus the warehouse's)",
            f"warehouse {lead['warehouse']:+.1%}, traffic {lead['traffic']:+.1%} (4M steps)", verdict))
    return claim_frame(rows)


def memory_as_in_table_3(memory: pd.DataFrame, paper_memory: pd.DataFrame | None = None,
                         slow_growth: float = 2.0) -> pd.DataFrame:
    """With one process per agent, DIALS's total memory grows with the agents (each process about flat) while
    GS's grows slowly: GS's peak at the largest size over the smallest at most `slow_growth`, and DIALS's total
    (the largest measured worker's peak times N) growing at least 5 times more than GS's.

    `memory`: `analysis.memory.memory_table` of the timed runs (notebook 08), one row per environment and size."""
    table = read_paper_table("memory") if paper_memory is None else paper_memory
    rows = []
    for env in [e for e in ENV_NAMES if e in set(memory["env"])]:
        part = memory[memory["env"] == env].sort_values("agents")
        small, large = part.iloc[0], part.iloc[-1]
        gs_growth = large["GS RSS"] / small["GS RSS"]
        total = "one process per agent RSS (worker peak x N)"
        dials_growth = large[total] / small[total]
        pm = table[table["env"] == env].set_index(["simulator", "agents"])["total_mb"]
        n0, n1 = int(small["agents"]), int(large["agents"])
        verdict = verdicts.all_of({
            "GS grows slowly": Verdict("reproduced" if gs_growth <= slow_growth else "not reproduced",
                                       f"GS {gs_growth:.3g}x (slowly: at most {slow_growth:g}x)"),
            "DIALS total grows with N": Verdict(
                "reproduced" if dials_growth >= 5 * gs_growth else "not reproduced",
                f"DIALS total {dials_growth:.3g}x (at least 5 times GS's growth)")})
        rows.append(claim_row(
            "DIALS's total memory grows with the agents, GS's slowly", f"{env}, {n0} -> {n1} agents",
            f"GS {small['GS RSS']:.0f} -> {large['GS RSS']:.0f} MiB; DIALS one process per agent "
            f"{small[total] / 1024:.2f} -> {large[total] / 1024:.1f} GiB (largest worker's peak x N, measured "
            "with 2 workers)",
            f"GS {pm[('GS', n0)]:.0f} -> {pm[('GS', n1)]:.0f} MB; DIALS {pm[('DIALS', n0)] / 1000:.2f} -> "
            f"{pm[('DIALS', n1)] / 1000:.1f} GB", verdict))
    return claim_frame(rows)


def f_claims_as_stated(ablation_finals: pd.DataFrame, ablation_starts: pd.DataFrame,
                       paper_f: pd.DataFrame | None = None) -> pd.DataFrame:
    """Appendix D.2 as written: traffic, 'F = 4M is worse than F = 1M' (retraining at least every 1M steps
    matters); warehouse, 'training the AIPs once suffices' (F = 4M matches the best F that retrains) and 'F = 100K
    is detrimental' (clearly worse than F = 4M). Each row names our agent count and the paper's. Within a run of S
    steps every F >= S trains the AIPs once, at the start, exactly as F = 4M does: the smallest such F of the
    ablation stands for F = 4M, and an F the claim needs that is >= S cannot be told from it ("not measured")."""
    table = read_paper_table("f_ablation") if paper_f is None else paper_f
    rows = []
    for env in [e for e in ENV_NAMES if e in set(ablation_finals["env"])]:
        part, first = (f[f["env"] == env] for f in (ablation_finals, ablation_starts))
        steps = int(part["timestep"].max())
        by_f = {round(f * paper.TOTAL_STEPS): g["mean_return"].to_numpy() for f, g in part.groupby("f_fraction")}
        start = {round(f * paper.TOTAL_STEPS): g["mean_return"].to_numpy() for f, g in first.groupby("f_fraction")}
        once = sorted(f for f in by_f if f >= steps)
        retraining = [f for f in by_f if f < steps]
        pf = table[table["env"] == env].set_index("F")
        where = f"{env}, ours {int(part['n_agents'].iloc[0])} agents, paper {int(pf['agents'].iloc[0])}"
        ours = ", ".join(f"F={f:,}: {mean_text(by_f[f])}" for f in sorted(by_f)) + \
            f" ({steps:,} steps: F >= {steps:,} trains once, as F=4M)"
        p = pf["final_return"]
        if env == "traffic":
            checks = [("F=4M is worse than F=1M", 1_000_000, f"F=4M {p['4M']:g} vs F=1M {p['1M']:g}")]
        else:
            best = max(retraining, key=lambda f: by_f[f].mean(), default=None)
            checks = [("training the AIPs once (F=4M) suffices", best,
                       f"F=4M {p['4M']:g} vs best other F {p.drop('4M').max():g}"),
                      ("F=100K is detrimental", 100_000, f"F=100K {p['100K']:g} vs F=4M {p['4M']:g}")]
        for claim, other, paper_text in checks:
            if not once or other is None or other not in by_f or other in once:
                reason = ("no F of the ablation trains the AIPs only once within the run" if not once else
                          "the ablation runs no F that retrains within the run" if other is None else
                          f"the ablation runs no F = {other:,}" if other not in by_f else
                          f"within {steps:,} steps F = {other:,} trains the AIPs once, as F = 4M does")
                rows.append(claim_row(claim, where, ours, paper_text, Verdict("not measured", reason)))
                continue
            base = once[0]
            verdict = verdicts.unless_learned({
                f"F={f:,}": verdicts.learned(*bootstrap_ci(by_f[f], start[f]), start=float(start[f].mean()))
                for f in (base, other)})
            if verdict is None and claim.startswith("training"):
                verdict = verdicts.at_least(*bootstrap_ci(by_f[base], by_f[other]),
                                            reference=float(by_f[other].mean()))
            elif verdict is None:  # traffic: F = 4M below 1M; warehouse: 100K below 4M
                worse, better = (base, other) if env == "traffic" else (other, base)
                verdict = verdicts.clearly_worse(*bootstrap_ci(by_f[worse], by_f[better]))
            rows.append(claim_row(claim, where, ours, paper_text, verdict))
    return claim_frame(rows)


__all__ = ["f_claims_as_stated", "gap_larger_in_warehouse", "gs_less_stable", "memory_as_in_table_3",
           "run_stability", "stability_table", "untrained_gap_grows"]
