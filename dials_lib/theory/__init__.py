"""The appendix's theory on exact tiny models: Lemma 1, Proposition 1, Lemma 2 and Theorem 1.

- `models`: exact tiny fPOSGs and their influence (by enumeration, filtering and Monte Carlo counting);
- `ialm`: influence-augmented local models of them, with exact Q-values and returns;
- `checks`: the numerical checks of each statement that notebook 01 runs.

Imports only the foundation modules.
"""
