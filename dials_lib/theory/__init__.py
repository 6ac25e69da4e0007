"""The appendix's theory on exact tiny models: Lemma 1, Proposition 1, Lemma 2 and Theorem 1.

- `models`: exact tiny models (influence by enumeration, local simulators, value functions);
- `checks`: the numerical checks of each statement that notebook 01 runs.

Imports only the foundation modules.
"""
