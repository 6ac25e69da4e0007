"""The rules that turn measured evidence into verdicts on the paper's claims (never typed in).

Each rule takes an estimate with its 95% confidence interval (from `stats.bootstrap_ci`) or a measured ratio and
returns one of VERDICTS with the reason, so a claim's row can show why it holds or not:

- "reproduced": the evidence supports the claim with the stated margin and the interval agrees;
- "partly": the point estimate goes the paper's way but the interval (or one of two sub-claims) does not;
- "not reproduced": the estimate goes against the claim.

Margins are written down here, once: `MATCH_TOLERANCE` says how far below GS a DIALS return may be and still
"match" it (the paper's own GS and DIALS curves differ by more than that between seeds), `LEARNING_MARGIN` how far
above its start a method's final return must be for it to have learned, `FAR_SLOWER` how much more GS's runtime
must grow than DIALS's, `FLAT_LIMIT` how much a "flat" memory may grow from the smallest to the largest size.

A claim that compares trained methods is "not measured" unless those methods learned at the budget (`learned`):
comparing policies that are still their initial weights would decide it by chance.
"""

from __future__ import annotations

from dataclasses import dataclass

VERDICTS: tuple[str, ...] = ("reproduced", "partly", "not reproduced", "not measured")
"""The possible verdicts, strongest first ("not measured": the preset does not run the experiment)."""
MATCH_TOLERANCE = 0.05
"""DIALS 'matches' GS when its final return is at most this fraction of |GS's| below it."""
LEARNING_MARGIN = 0.05
"""A method learned when its final return is above its return before training by more than this fraction of |start|,
over the whole 95% interval."""
FAR_SLOWER = 2.0
"""'Far slower' growth: GS's runtime grows at least this many times more than DIALS's over the same sizes."""
FLAT_LIMIT = 1.25
"""'Flat' memory: the largest size needs at most this multiple of the smallest size's memory."""


@dataclass(frozen=True)
class Verdict:
    """A verdict and the reason for it, in words built from the numbers."""

    verdict: str
    """One of VERDICTS."""
    reason: str
    """Why, with the numbers that decided it."""


def _interval(estimate: float, low: float, high: float) -> str:
    """'+1.5 [95% CI -0.2, +3.1]'."""
    return f"{estimate:+.3g} [95% CI {low:+.3g}, {high:+.3g}]"


def at_least(estimate: float, low: float, high: float, reference: float,
             tolerance: float = MATCH_TOLERANCE) -> Verdict:
    """'A matches or beats B', given A - B with its interval and B's mean (`reference`)."""
    margin = -tolerance * abs(reference)
    text = f"difference {_interval(estimate, low, high)}; matching allows down to {margin:+.3g}"
    if low >= margin:
        return Verdict("reproduced", text + ": the whole interval is above it")
    if estimate >= margin:
        return Verdict("partly", text + ": the estimate is above it, the interval reaches below")
    return Verdict("not reproduced", text + ": the estimate is below it")


def learned(estimate: float, low: float, high: float, start: float, margin: float = LEARNING_MARGIN) -> Verdict:
    """'The method learned', given final minus start return with its interval and the start's mean."""
    need = margin * abs(start)
    text = f"final - start {_interval(estimate, low, high)}; learning needs more than {need:+.3g}"
    if low > need:
        return Verdict("reproduced", text + ": the whole interval is above it")
    if estimate > need:
        return Verdict("partly", text + ": the estimate is above it, the interval reaches below")
    return Verdict("not reproduced", text + ": the estimate is not above it")


LEARNED_WORDS: dict[str, str] = {"reproduced": "yes", "partly": "partly", "not reproduced": "no"}
"""A table's answer to "did it learn?" for each verdict of `learned`."""


def learned_word(estimate: float, low: float, high: float, start: float) -> str:
    """`learned` as a table's answer to "did it learn?": yes, partly or no."""
    return LEARNED_WORDS[learned(estimate, low, high, start).verdict]


def unless_learned(learning: dict[str, Verdict]) -> Verdict | None:
    """'not measured' when one of the compared methods did not clearly learn (its `learned` verdict), else None."""
    missing = {name: v for name, v in learning.items() if v.verdict != "reproduced"}
    if not missing:
        return None
    return Verdict("not measured", "; ".join(f"{name} did not clearly learn at this budget ({v.reason})"
                                             for name, v in missing.items()))


def clearly_worse(estimate: float, low: float, high: float) -> Verdict:
    """'A is clearly worse than B', given A - B with its interval."""
    text = f"difference {_interval(estimate, low, high)}"
    if high < 0:
        return Verdict("reproduced", text + ": the whole interval is below 0")
    if estimate < 0:
        return Verdict("partly", text + ": the estimate is below 0, the interval reaches above")
    return Verdict("not reproduced", text + ": the estimate is not below 0")


def all_of(parts: dict[str, Verdict]) -> Verdict:
    """A claim made of sub-claims: reproduced when all are, not reproduced when all are not, else partly."""
    text = "; ".join(f"{name}: {part.reason}" for name, part in parts.items())
    if all(p.verdict == "reproduced" for p in parts.values()):
        return Verdict("reproduced", text)
    if any(p.verdict != "not reproduced" for p in parts.values()):
        return Verdict("partly", text)
    return Verdict("not reproduced", text)


def both_hurt(too_often: tuple[float, float, float], too_rarely: tuple[float, float, float]) -> Verdict:
    """'Retraining too often can hurt and too rarely can too': both differences (vs the middle F) below 0."""
    return all_of({"too often": clearly_worse(*too_often), "too rarely": clearly_worse(*too_rarely)})


def all_hold(conditions: dict[str, bool], evidence: str = "") -> Verdict:
    """An exact check made of conditions that must all hold (the theory's statements): reproduced or not."""
    failed = [name for name, holds in conditions.items() if not holds]
    text = f"{evidence}; " if evidence else ""
    if not failed:
        return Verdict("reproduced", text + f"all {len(conditions)} conditions hold")
    return Verdict("not reproduced", text + "fails: " + ", ".join(failed))


def grows_far_slower(slow_growth: float, fast_growth: float, factor: float = FAR_SLOWER) -> Verdict:
    """'A's runtime grows far slower than B's': growth = runtime at the largest size over the smallest."""
    text = f"growth {slow_growth:.3g}x against {fast_growth:.3g}x (far slower: at least {factor:g} times less)"
    if fast_growth >= factor * slow_growth:
        return Verdict("reproduced", text)
    if fast_growth > slow_growth:
        return Verdict("partly", text + ": slower, not far slower")
    return Verdict("not reproduced", text)


def stays_flat(growth: float, limit: float = FLAT_LIMIT) -> Verdict:
    """'It stays flat': the largest size's value over the smallest's is at most `limit`."""
    text = f"growth {growth:.3g}x from the smallest to the largest size (flat: at most {limit:g}x)"
    if growth <= limit:
        return Verdict("reproduced", text)
    if growth <= 2 * limit:
        return Verdict("partly", text + ": grows, less than twice the limit")
    return Verdict("not reproduced", text)


__all__ = [
    "FAR_SLOWER",
    "FLAT_LIMIT",
    "LEARNED_WORDS",
    "LEARNING_MARGIN",
    "MATCH_TOLERANCE",
    "VERDICTS",
    "Verdict",
    "all_hold",
    "all_of",
    "at_least",
    "both_hurt",
    "clearly_worse",
    "grows_far_slower",
    "learned",
    "learned_word",
    "stays_flat",
    "unless_learned",
]
