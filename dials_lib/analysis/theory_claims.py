"""The appendix's statements as claims: each a function from the exact checks' tables to a row with a verdict.

Notebook 01 runs the checks of `dials_lib.theory.checks` (exact tiny models) and hands their tables here. Each
function returns a row with the statement, a short evidence line, the verdict (by `verdicts.all_hold`: reproduced
only when every condition holds) and the rule, a longer account of the numbers that decided it. `summary_table`
keeps the statement, evidence and verdict of each row.

A check is only evidence if it can fail: Lemma 2's and Theorem 1's verdicts also require that a deliberately wrong
constant is caught by the same check.
"""

from __future__ import annotations

import pandas as pd

from dials_lib.analysis.verdicts import Verdict, all_hold
from dials_lib.theory import checks

EXACT = 1e-12
"""Largest difference two exact routes to the same number may have (rounding only)."""
MC_SLOPE = (-0.7, -0.3)
"""Range the log-log slope of the Monte Carlo error must fall in to show 1/sqrt(n) convergence."""


def _row(statement: str, evidence: str, verdict: Verdict, scope: str = "") -> dict[str, str]:
    """A theory claim's row; a reproduced verdict carries its `scope` ('reproduced (observed local states)')."""
    label = f"{verdict.verdict} ({scope})" if scope and verdict.verdict == "reproduced" else verdict.verdict
    return {"statement": statement, "evidence": evidence, "verdict": label, "rule": verdict.reason}


def monte_carlo_summary(mc: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over repeats of the Monte Carlo error, per number of GS episodes."""
    return mc.groupby("episodes")["weighted TV"].agg(["mean", "std"]).reset_index()


def lemma1(routes: pd.DataFrame, mc: pd.DataFrame) -> dict[str, str]:
    """Lemma 1: the two exact routes to the influence agree, and counting GS episodes converges to it."""
    gap = routes["max |route1 - route2|"].max()
    mc_mean, slope = monte_carlo_summary(mc), checks.convergence_slope(mc)
    conditions = {
        "routes agree": bool(gap < EXACT and routes["max |sum_u I - 1|"].max() < EXACT),
        "Monte Carlo converges": bool(mc_mean["mean"].is_monotonic_decreasing and MC_SLOPE[0] < slope < MC_SLOPE[1]),
    }
    detail = (f"largest gap between the two exact routes: {gap:.1e} over {len(routes)} (model, agent) pairs\n"
              f"Monte Carlo error {mc_mean['mean'].iloc[0]:.3g} -> {mc_mean['mean'].iloc[-1]:.3g}, "
              f"log-log slope {slope:.2f}")
    return _row("Lemma 1", f"routes agree to {gap:.0e}; MC slope {slope:.2f}", all_hold(conditions, detail))


def proposition1(prop1: pd.DataFrame) -> dict[str, str]:
    """Proposition 1: never more influences than policies, strictly fewer, one under transition independence."""
    influences, policies = prop1["joint influences |Psi|"], prop1["joint policies |Pi|"]
    independent = prop1[prop1["kind"].str.startswith("transition") & (prop1["agent"] == 0)]
    conditions = {
        "never more": bool((prop1["distinct influences"] <= prop1["policies of the others"]).all()
                           and (influences <= policies).all()),
        "strictly fewer": bool((influences < policies).all()),
        "one influence under transition independence": bool((independent["distinct influences"] == 1).all()),
        "several for generic agents": bool((prop1.loc[prop1["kind"] == "generic", "distinct influences"] > 1).all()),
    }
    detail = (f"|Psi| <= |Pi| everywhere: {conditions['never more']}; strictly fewer in every model: "
              f"{conditions['strictly fewer']}\ntransition-independent agent has exactly one influence: "
              f"{conditions['one influence under transition independence']}; generic agents have several: "
              f"{conditions['several for generic agents']}")
    return _row("Proposition 1", f"|Psi|/|Pi| at most {(influences / policies).max():.2g}; "
                "one influence under transition independence", all_hold(conditions, detail))


def lemma2(lemma2_table: pd.DataFrame, constants: pd.DataFrame, tightness: pd.DataFrame, noisy: pd.DataFrame
           ) -> dict[str, str]:
    """Lemma 2: the paper's bound holds on every pair, and the check catches deliberately wrong constants.

    `constants`: one row per bound tried ('paper: ...', 'tight: ...', 'wrong: ...') with its violated rows.
    """
    bounds = constants["bound"]
    conditions = {
        "paper bound holds": bool(lemma2_table["holds"].all()),
        "wrong constants caught": bool((constants.loc[bounds.str.startswith("wrong"), "rows violated"] > 0).all()),
    }
    tight_holds = bool(constants.loc[bounds.str.startswith("tight"), "rows violated"].eq(0).all())
    worst = {kind: lemma2_table.loc[lemma2_table["pairs"] == kind, "observed / bound"].max()
             for kind in ("random", "adversarial")}
    detail = "\n".join([
        f"paper bound holds on all {len(lemma2_table)} (pairs, Q, eps, t) rows: {conditions['paper bound holds']}",
        f"max observed / bound: random pairs {worst['random']:.3f}, adversarial pair {worst['adversarial']:.3f} "
        f"(H=4), {tightness['observed / paper bound'].iloc[-1]:.3f} at H={tightness['H'].iloc[-1]}",
        f"wrong constants are caught: {conditions['wrong constants caught']}; sharper constant (H-t-1)(H-t)/2 "
        f"holds: {tight_holds}",
        f"noisy observations: observed / bound up to {noisy['t=1: observed / bound'].max():.0f} at t=1, "
        f"{noisy['t=0: observed / bound'].max():.2f} at t=0 (outside the lemma's check)",
    ])
    evidence = (f"max observed/bound {max(worst.values()):.2f} (H=4); "
                "fails per-history with noisy observations")
    return _row("Lemma 2", evidence, all_hold(conditions, detail), scope="observed local states")


def theorem1(theorem1_table: pd.DataFrame, constructed: pd.DataFrame, wrong_factor: pd.DataFrame,
             many: pd.DataFrame) -> dict[str, str]:
    """Theorem 1: pairs meeting the gap condition keep the optimal policy; the condition is needed, and with
    factor 1 instead of 2 the check is caught; many influences share an optimal policy.

    `constructed`: the hand-made pairs of `check_theorem1_constructed` (rows 1 and 2 violate the condition, one
    changing the policy and one not); `wrong_factor`: the same with the wrong factor.
    """
    met = int(theorem1_table["gap condition"].sum())
    conditions = {
        "consistent": bool(theorem1_table["consistent"].all() and constructed["consistent"].all()),
        "violating pairs both ways": bool(not constructed.loc[1, "same policy"] and constructed.loc[2, "same policy"]
                                          and not constructed.loc[1:2, "gap condition"].any()),
        "wrong factor caught": not bool(wrong_factor["consistent"].all()),
        "influences share policies": bool((many["distinct optimal policies"] < many["influences"]).all()),
    }
    detail = "\n".join([
        f"{met} of {len(theorem1_table)} random pairs meet the gap condition; all of them share the optimal policy: "
        f"{conditions['consistent']}",
        f"violating pairs both with and without a policy change: {conditions['violating pairs both ways']}; "
        f"wrong factor caught: {conditions['wrong factor caught']}",
        f"{many['influences'].sum()} random influences induce {many['distinct optimal policies'].sum()} distinct "
        f"optimal policies over {len(many)} models: {conditions['influences share policies']}",
    ])
    return _row("Theorem 1", f"{met}/{len(theorem1_table)} random pairs meet the condition, none changes policy",
                all_hold(conditions, detail))


def summary_table(rows: list[dict[str, str]]) -> pd.DataFrame:
    """The statements with their evidence and verdict, one row each (the rule left out)."""
    return pd.DataFrame(rows)[["statement", "evidence", "verdict"]]


__all__ = ["EXACT", "MC_SLOPE", "lemma1", "lemma2", "monte_carlo_summary", "proposition1", "summary_table",
           "theorem1"]
