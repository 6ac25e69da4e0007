"""Analysis of the training runs and timed runs: statistics, run plans, report tables and figures, and the claims.

One module per idea:
- `stats`: mean and standard error over seeds, percentile bootstrap intervals;
- `plans`: which runs each experiment trains on a preset (the main comparison, the F ablation), running them,
  and reading their records back as frames;
- `report`: learning curves, bar charts and tables of those runs next to the paper's numbers;
- `env_stats`: returns of random and hand-coded control and influence-source statistics (notebook 02);
- `influence_eval`: how good the AIPs are: calibration, predicted vs empirical influence, IALS against the GS
  (notebook 03);
- `comparison`: DIALS against the GS in one environment, section by section (notebooks 04 and 05);
- `untrained_gap`: the experiment that decides why untrained-DIALS collapses on our traffic grid (notebook 04);
- `runtimes`, `memory`: the timed runs of `scaling` against the paper's Tables 1-3 (notebooks 07, 08);
- `verdicts`: the rules that turn evidence into a verdict (reproduced / partly / not reproduced);
- `claims`, `theory_claims`: the paper's claims, each a function from records to rows of evidence with a verdict
  (notebooks 09 and 01).

The paper's own numbers come from `dials_lib.paper`.
"""
