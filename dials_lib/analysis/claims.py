"""The paper's claims on training, each a function from run records to rows of evidence with a verdict.

A claim function takes the records of our runs (final evaluations, timed runs, their projections) and the paper's
table it is compared with, and returns one row per environment and size with the columns CLAIM_COLUMNS: the claim,
where it was tested, our evidence, the paper's, the verdict and the rule that decided it. Verdicts come from the
rules of `dials_lib.analysis.verdicts`, never typed in; a claim the preset gives no evidence for is
"not measured", and so is a comparison of trained methods of which one did not learn at the preset's budget.

- `dials_matches_gs`: DIALS matches or beats training on the GS (Figures 5, 6);
- `untrained_is_worse`: untrained-DIALS is clearly worse than DIALS (Figures 5, 6);
- `dials_reaches_hand_coded`: DIALS reaches or beats the hand-coded controller (Figures 5, 6);
- `runtime_grows_slower`: DIALS's runtime grows far slower than GS's with the number of agents (Tables 1, 2);
- `extreme_f_hurts`: retraining the AIPs too often can hurt, and too rarely can too (Figures 7, 8);
- `memory_stays_flat`: the memory of a DIALS process stays flat as the number of agents grows (Table 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from dials_lib import paper
from dials_lib.analysis import verdicts
from dials_lib.analysis.plans import main_comparison_runs
from dials_lib.analysis.stats import bootstrap_ci
from dials_lib.analysis.verdicts import Verdict
from dials_lib.hyperparameters import ENV_NAMES
from dials_lib.paper import read_paper_table

CLAIM_COLUMNS: tuple[str, ...] = ("claim", "env", "our evidence", "paper", "verdict", "rule")
"""Columns of a claim's rows."""


def claim_row(claim: str, where: str, evidence: str, paper_evidence: str, verdict: Verdict) -> dict[str, str]:
    """One row of evidence: the claim, where it was tested, both sides' evidence, the verdict and its rule."""
    return {"claim": claim, "env": where, "our evidence": evidence, "paper": paper_evidence,
            "verdict": verdict.verdict, "rule": verdict.reason}


def claim_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """Rows as a frame with the CLAIM_COLUMNS, also when there are none."""
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def _envs(frame: pd.DataFrame) -> list[str]:
    """The environments present in `frame`, in the series' order."""
    return [env for env in ENV_NAMES if env in set(frame["env"])]


def returns_of(finals: pd.DataFrame, env: str, n_agents: int, simulator: str) -> np.ndarray:
    """Final returns of the main comparison's runs of one simulator, one per seed."""
    rows = finals[(finals["env"] == env) & (finals["n_agents"] == n_agents) & (finals["simulator"] == simulator)]
    return rows["mean_return"].to_numpy()


def paper_row(results: pd.DataFrame, env: str, n_agents: int) -> pd.Series:
    """The paper's final returns at one size (paper/results.csv)."""
    return results[(results["env"] == env) & (results["agents"] == n_agents)].iloc[0]


def mean_text(values: np.ndarray) -> str:
    """The mean of a group of seeds to 4 significant digits, or 'no runs'."""
    return f"{values.mean():.4g}" if len(values) else "no runs"


def missing_side(*groups: np.ndarray) -> Verdict | None:
    """'not measured' when one of the groups of seeds is empty, else None."""
    if any(len(g) == 0 for g in groups):
        return Verdict("not measured", "the preset has no finished run of one of the two sides")
    return None


def learning_of(finals: pd.DataFrame, starts: pd.DataFrame, env: str, n_agents: int, simulator: str) -> Verdict:
    """Whether the main comparison's runs of one simulator learned: final against start return over seeds."""
    final, start = returns_of(finals, env, n_agents, simulator), returns_of(starts, env, n_agents, simulator)
    if len(final) == 0 or len(start) == 0:
        return Verdict("not measured", "no finished run")
    return verdicts.learned(*bootstrap_ci(final, start), start=float(start.mean()))


def with_start(label: str, finals: np.ndarray, starts: np.ndarray) -> str:
    """'DIALS 181 (from 175)': a method's mean final return and where it started."""
    return f"{label} {mean_text(finals)} (from {mean_text(starts)})"


def dials_matches_gs(finals: pd.DataFrame, starts: pd.DataFrame, sizes: Mapping[str, Iterable[int]],
                     steps: Mapping[str, int], paper_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """DIALS minus GS final return per environment and size; 'matches' allows DIALS a little below GS. "Not
    measured" unless both learned at this budget.

    `finals` and `starts`: one row per run, its last and its first evaluation (`plans.final_evaluations`,
    `plans.first_evaluations`), DIALS at the paper's main F among others; `sizes` and `steps`: the sizes and steps
    per agent of the preset in each environment.
    """
    results = read_paper_table("results") if paper_results is None else paper_results
    main, first, rows = main_comparison_runs(finals), main_comparison_runs(starts), []
    for env in [e for e in ENV_NAMES if e in sizes]:
        for n in sizes[env]:
            dials, gs = returns_of(main, env, n, "dials"), returns_of(main, env, n, "gs")
            p = paper_row(results, env, n)
            verdict = (missing_side(dials, gs)
                       or verdicts.unless_learned({m: learning_of(main, first, env, n, s)
                                                   for m, s in (("DIALS", "dials"), ("GS", "gs"))})
                       or verdicts.at_least(*bootstrap_ci(dials, gs), reference=float(gs.mean())))
            rows.append(claim_row(
                "DIALS matches or beats GS on return", f"{env}, {n} agents",
                f"{with_start('DIALS', dials, returns_of(first, env, n, 'dials'))} vs "
                f"{with_start('GS', gs, returns_of(first, env, n, 'gs'))} ({len(dials)} seeds each; "
                f"{steps[env]:,} steps)",
                f"DIALS {p['DIALS']:g} vs GS {p['GS']:g} (4M steps)", verdict))
    return claim_frame(rows)


def untrained_is_worse(finals: pd.DataFrame, starts: pd.DataFrame, sizes: Mapping[str, Iterable[int]],
                       paper_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Untrained-DIALS minus DIALS final return per environment and size: clearly below 0? "Not measured" unless
    DIALS learned at this budget (`finals`, `starts` as in `dials_matches_gs`)."""
    results = read_paper_table("results") if paper_results is None else paper_results
    main, first, rows = main_comparison_runs(finals), main_comparison_runs(starts), []
    for env in [e for e in ENV_NAMES if e in sizes]:
        for n in sizes[env]:
            untrained, dials = returns_of(main, env, n, "untrained-dials"), returns_of(main, env, n, "dials")
            p = paper_row(results, env, n)
            verdict = (missing_side(untrained, dials)
                       or verdicts.unless_learned({"DIALS": learning_of(main, first, env, n, "dials")})
                       or verdicts.clearly_worse(*bootstrap_ci(untrained, dials)))
            rows.append(claim_row(
                "untrained-DIALS is clearly worse than DIALS", f"{env}, {n} agents",
                f"{with_start('untrained-DIALS', untrained, returns_of(first, env, n, 'untrained-dials'))} vs "
                f"{with_start('DIALS', dials, returns_of(first, env, n, 'dials'))}",
                f"untrained-DIALS {p['untrained_DIALS']:g} vs DIALS {p['DIALS']:g}", verdict))
    return claim_frame(rows)


def dials_reaches_hand_coded(finals: pd.DataFrame, starts: pd.DataFrame, hand_coded: pd.DataFrame,
                             sizes: Mapping[str, Iterable[int]], paper_results: pd.DataFrame | None = None
                             ) -> pd.DataFrame:
    """DIALS minus the hand-coded controller's return per environment and size ('reaches' allows DIALS a little
    below it, as 'matches' does). "Not measured" unless DIALS learned at this budget.

    `hand_coded`: the controller's return on the GS (`report.hand_coded_baseline`), with columns env, n_agents and
    mean_return; `finals`, `starts` as in `dials_matches_gs`.
    """
    results = read_paper_table("results") if paper_results is None else paper_results
    main, first, rows = main_comparison_runs(finals), main_comparison_runs(starts), []
    for env in [e for e in ENV_NAMES if e in sizes]:
        for n in sizes[env]:
            dials = returns_of(main, env, n, "dials")
            rule = hand_coded[(hand_coded["env"] == env) & (hand_coded["n_agents"] == n)]["mean_return"]
            p = paper_row(results, env, n)
            verdict = missing_side(dials, rule.to_numpy()) or verdicts.unless_learned(
                {"DIALS": learning_of(main, first, env, n, "dials")})
            if verdict is None:  # the controller's return is measured on many episodes: a constant here
                verdict = verdicts.at_least(*bootstrap_ci(dials, rule), reference=float(rule.mean()))
            rows.append(claim_row(
                "DIALS reaches or beats the hand-coded controller", f"{env}, {n} agents",
                f"{with_start('DIALS', dials, returns_of(first, env, n, 'dials'))} vs hand-coded "
                f"{mean_text(rule.to_numpy())}",
                f"DIALS {p['DIALS']:g} vs hand-coded {p['hand_coded']:g} (4M steps)", verdict))
    return claim_frame(rows)


def runtime_grows_slower(projected: pd.DataFrame, paper_runtimes: pd.DataFrame | None = None,
                         workers: Iterable[int] = (paper.CPUS, 2)) -> pd.DataFrame:
    """Growth of the projected runtime of the paper's protocol from the smallest to the largest measured size.

    `projected`: `projection.projections` of the timed runs (budget 'paper protocol', simulators labelled as in the
    paper's tables); DIALS at each environment's main F. One row per environment and worker count.
    """
    table = read_paper_table("runtimes") if paper_runtimes is None else paper_runtimes
    protocol, rows = projected[projected["budget"] == "paper protocol"], []
    for env in _envs(protocol):
        prot = protocol[protocol["env"] == env]
        sizes = sorted(prot["n_agents"].unique())
        small, large = sizes[0], sizes[-1]
        dials = paper.main_dials_label(env)

        def total(simulator: str, n: int, p: int, prot: pd.DataFrame = prot) -> float:
            row = prot[(prot["simulator"] == simulator) & (prot["n_agents"] == n) & (prot["workers"] == p)]
            return float(row["total_s"].iloc[0])

        pr = table[table["env"] == env].set_index(["simulator", "agents"])["total_h"]
        paper_growth = (f"GS {pr[('GS', large)] / pr[('GS', small)]:.3g}x, DIALS "
                        f"{pr[(dials, large)] / pr[(dials, small)]:.3g}x ({paper.CPUS} CPUs)")
        for p in workers:
            gs_growth = total("GS", large, p) / total("GS", small, p)
            dials_growth = total(dials, large, p) / total(dials, small, p)
            rows.append(claim_row(
                "DIALS runtime grows far slower than GS with the number of agents",
                f"{env}, {small} -> {large} agents, {p} workers (projected)",
                f"GS {gs_growth:.3g}x, DIALS {dials_growth:.3g}x", paper_growth,
                verdicts.grows_far_slower(dials_growth, gs_growth)))
    return claim_frame(rows)


def extreme_f_hurts(ablation_finals: pd.DataFrame, ablation_starts: pd.DataFrame,
                    paper_f: pd.DataFrame | None = None) -> pd.DataFrame:
    """The F ablation: final return with the most (too often) and least (too rarely) frequent F the preset runs,
    each minus the return with the paper's middle F (1M of its 4M steps).

    `ablation_finals` and `ablation_starts`: the final and first evaluations of the ablation's DIALS runs
    (`plans.runs_of` the ablation plan). A side without an F other than the middle one is "not measured" (within a
    preset's shorter run, every F at or beyond its length trains the AIPs once, at the start, so the preset runs
    only one of them), and so is a side whose runs did not learn.
    """
    table = read_paper_table("f_ablation") if paper_f is None else paper_f
    middle, labels = paper.f_fraction(paper.MIDDLE_F), list(paper.F_STEPS)
    rows = []
    for env in _envs(ablation_finals):
        part, first = (frame[frame["env"] == env] for frame in (ablation_finals, ablation_starts))
        by_f = {f: g["mean_return"].to_numpy() for f, g in part.groupby("f_fraction")}
        start_by_f = {f: g["mean_return"].to_numpy() for f, g in first.groupby("f_fraction")}
        pf = table[table["env"] == env].set_index("F")["final_return"]
        for side, f, paper_label in (("too often", min(by_f), labels[0]), ("too rarely", max(by_f), labels[-1])):
            paper_text = f"F={paper_label}: {pf[paper_label]:g} vs F={paper.MIDDLE_F}: {pf[paper.MIDDLE_F]:g}"
            claim, where = f"retraining the AIPs {side} can hurt", f"{env}, {part['n_agents'].iloc[0]} agents"
            if middle not in by_f or f == middle:
                runs = ", ".join(f"{x * paper.TOTAL_STEPS:,.0f}" for x in sorted(by_f))
                rows.append(claim_row(claim, where, f"F values run: {runs}", paper_text, Verdict(
                    "not measured", f"the preset runs no F {side} next to F={paper.MIDDLE_F}")))
                continue
            learning = {f"F={label:,.0f}": verdicts.learned(*bootstrap_ci(by_f[x], start_by_f[x]),
                                                            start=float(start_by_f[x].mean()))
                        for x, label in ((f, f * paper.TOTAL_STEPS), (middle, middle * paper.TOTAL_STEPS))}
            verdict = verdicts.unless_learned(learning) or verdicts.clearly_worse(*bootstrap_ci(by_f[f], by_f[middle]))
            rows.append(claim_row(
                claim, where, f"F={f * paper.TOTAL_STEPS:,.0f}: {by_f[f].mean():.4g} vs F={paper.MIDDLE_F}: "
                f"{by_f[middle].mean():.4g}", paper_text, verdict))
    return claim_frame(rows)


def memory_stays_flat(measured: pd.DataFrame, paper_memory: pd.DataFrame | None = None,
                      workers: int = 2) -> pd.DataFrame:
    """Peak memory of the largest DIALS worker process at the largest measured size over the smallest.

    `measured`: the timed runs (`scaling.measurements`), with their largest worker's peak RSS and agents per worker.
    """
    table = read_paper_table("memory") if paper_memory is None else paper_memory
    rows = []
    for env in _envs(measured):
        runs = measured[(measured["env"] == env) & (measured["simulator"] == "dials")]
        runs = runs[runs["workers"] == workers].sort_values("n_agents")
        small, large = runs.iloc[0], runs.iloc[-1]
        growth = large["max_worker_peak_rss_mib"] / small["max_worker_peak_rss_mib"]
        pm = table[(table["env"] == env) & (table["simulator"] == "DIALS")].set_index("agents")["per_process_mb"]
        rows.append(claim_row(
            "memory per DIALS process stays flat",
            f"{env}, {int(small['n_agents'])} -> {int(large['n_agents'])} agents",
            f"largest worker {small['max_worker_peak_rss_mib']:.0f} -> {large['max_worker_peak_rss_mib']:.0f} MiB "
            f"({int(small['agents_per_worker'])} -> {int(large['agents_per_worker'])} agents per worker)",
            f"{pm.loc[small['n_agents']]:.0f} -> {pm.loc[large['n_agents']]:.0f} MB "
            "(1 agent per process)",
            verdicts.stays_flat(growth)))
    return claim_frame(rows)


def summary(table: pd.DataFrame) -> pd.Series:
    """Per claim, how many rows got each verdict ('reproduced: 2, partly: 1')."""
    return table.groupby("claim", sort=False)["verdict"].agg(
        lambda v: ", ".join(f"{k}: {n}" for k, n in v.value_counts().items()))


__all__ = [
    "CLAIM_COLUMNS",
    "claim_frame",
    "claim_row",
    "dials_matches_gs",
    "dials_reaches_hand_coded",
    "extreme_f_hurts",
    "learning_of",
    "mean_text",
    "memory_stays_flat",
    "missing_side",
    "paper_row",
    "returns_of",
    "runtime_grows_slower",
    "summary",
    "untrained_is_worse",
    "with_start",
]
