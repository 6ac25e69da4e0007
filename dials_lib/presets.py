"""Run presets: how much of the paper's protocol each budget runs (smoke for CI, quick the main job, paper).

The one place that sets how much of the paper's protocol a budget runs: steps per agent, evaluation interval and
episodes, sizes and seeds (`RunBudget`), the F values of the ablation, and the AIP data set and epochs
(`Preset.hyperparameters`).

A budget is a prefix of the paper's run, not a compressed copy of it. PPO's learning rate and clip decay over the
paper's 4M steps (`RunConfig.anneal_timesteps`) and F stays the paper's F in steps, so a 1M-step run trains
exactly like the first quarter of the paper's 4M-step run: the same step sizes, and the AIPs retrained at the same
steps (traffic, F = 1M: once, at the start; the warehouse, F = 4M: once, at the start). Compressing the schedule
instead (decaying to zero over a short run, F as the same fraction of it) makes a short run spend most of its
steps at a small learning rate, and the agents do not learn. An F at or beyond the run's length means "trained once,
at the start" for that run, so the ablation keeps only the paper's F values whose schedules differ at the budget.

Every field carries a one-line docstring that the overview notebook renders.
`dials_lib.training.run_config.config_from_preset` turns a preset into a `RunConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dials_lib.hyperparameters import ENV_VARIANTS, TRAINABLE_ENVS, EnvHyperparameters, paper_hyperparameters
from dials_lib.validation import check_choice, with_fields

PRESET_NAMES: tuple[str, ...] = ("smoke", "quick", "full4", "scale", "paper")


@dataclass(frozen=True)
class RunBudget:
    """How much of the paper's protocol a preset runs: sizes, seeds and the per-agent step budget."""

    sizes: tuple[int, ...]
    """Numbers of agents trained (square numbers; the paper used 4, 25, 49, 100)."""
    n_seeds: int
    """Independent runs per configuration (mean and standard error are over these)."""
    total_timesteps: int
    """Training steps per agent (the paper: 4M)."""
    eval_every: int
    """Steps per agent between evaluations on the GS."""
    eval_episodes: int
    """GS episodes per evaluation."""
    f_fractions: tuple[float, ...] = (0.025, 0.125, 0.25, 1.0)
    """F values of the ablation as fractions of the paper's 4M steps (100K, 500K, 1M, 4M), those that retrain at
    different steps within this budget."""
    ablation_size: int = 4
    """Number of agents in the F ablation (the paper: 49 for traffic, 4 for the warehouse)."""
    ablation_seeds: int = 2
    """Seeds per F value in the F ablation (the first seeds of the main comparison, whose runs are reused)."""

    @property
    def n_evaluations(self) -> int:
        """Evaluations per run, including the one before training."""
        return self.total_timesteps // self.eval_every + 1

    def ablation_f(self, paper_total: int = 4_000_000) -> dict[float, int]:
        """F in steps per agent of each fraction of the ablation (a fraction of the paper's `paper_total` steps)."""
        return {fraction: round(fraction * paper_total) for fraction in self.f_fractions}


@dataclass(frozen=True)
class Preset:
    """A named budget for the whole notebook series: smoke (CI), quick (the main job), paper (full)."""

    name: str
    """Preset name, one of PRESET_NAMES."""
    description: str
    """What the preset is for and how long it takes on 2 cores."""
    traffic: RunBudget
    """Training budget for the traffic experiments."""
    warehouse: RunBudget
    """Training budget for the warehouse experiments."""
    env_episodes: int
    """GS episodes per size and controller in the environments notebook."""
    n_workers: int = 2
    """Parallel joblib workers (this machine has 2 cores)."""
    seed: int = 0
    """Base seed; run seeds are seed, seed+1, ..."""
    env_sizes: tuple[int, ...] = field(default=(4, 25, 49, 100))
    """Numbers of agents shown in the environments notebook."""
    theory_models: int = 20
    """Random tiny models (or IALM pairs per eps) in each check of the theory notebook."""
    theory_mc_samples: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    """GS episode counts of the Monte Carlo influence estimates in the theory notebook (Lemma 1)."""
    aip_agents: int = 9
    """Agents in the influence-predictor notebook's grid (9: it has corner, edge and centre agents)."""
    aip_dataset_steps: int = 10_000
    """GS steps per AIP data set in the influence-predictor notebook and in DIALS runs (the paper: 1e4)."""
    aip_epoch_fraction: float = 1.0
    """Fraction of the paper's AIP training epochs run in the influence-predictor notebook and in DIALS runs."""
    scaling_sizes: tuple[int, ...] = (4, 25, 49, 100)
    """Numbers of agents whose runtime and memory are measured (runtimes and memory notebooks)."""
    scaling_steps: int = 2_560
    """Steps per agent of each timed training run; longer budgets are extrapolated from it."""
    scaling_aip_epochs: int = 5
    """AIP epochs in each timed retraining; the paper's epoch count is extrapolated linearly from it."""
    timed_runs_preset: str | None = None
    """The preset whose timed runs (notebook 07) this preset's runtime projections and memory read (None: its own)."""
    ablation_preset: str | None = None
    """The preset whose F ablation (notebook 06) this preset's claims read (None: its own)."""

    def hyperparameters(self, env: str) -> EnvHyperparameters:
        """The paper's hyperparameters for `env` with this preset's AIP data set and share of the AIP epochs."""
        hp = paper_hyperparameters(env)
        aip = with_fields(hp.aip, dataset_steps=self.aip_dataset_steps,
                          epochs=max(1, round(hp.aip.epochs * self.aip_epoch_fraction)))
        return with_fields(hp, aip=aip)

    def budget(self, env: str) -> RunBudget:
        """The training budget of `env` ('traffic' or 'warehouse'; a variant gets that of the environment it varies)."""
        check_choice("env", env, TRAINABLE_ENVS)
        return self.traffic if ENV_VARIANTS.get(env, env) == "traffic" else self.warehouse


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        description="CI: every code path on a tiny budget, seconds per notebook; numbers are not meaningful.",
        # Every F of the paper is beyond these 2 chunks; an F of 1,024 steps (not the paper's) makes the ablation
        # retrain at the second chunk, so that CI runs that code path too.
        # Two sizes, so that the figures and claims across sizes (notebook 10) run in CI too.
        traffic=RunBudget(sizes=(4, 25), n_seeds=2, total_timesteps=2_048, eval_every=1_024, eval_episodes=1,
                          f_fractions=(0.000256, 0.25)),
        warehouse=RunBudget(sizes=(4, 25), n_seeds=2, total_timesteps=2_048, eval_every=1_024, eval_episodes=1,
                            f_fractions=(0.000256, 1.0)),
        env_episodes=1,
        scaling_sizes=(4, 25),
        scaling_steps=256,
        scaling_aip_epochs=1,
        env_sizes=(4, 25),
        theory_models=3,
        theory_mc_samples=(100, 1_000, 10_000),
        aip_dataset_steps=1_200,
        aip_epoch_fraction=0.05,
    ),
    "quick": Preset(
        name="quick",
        description="The main job: the whole series in about 3 hours on 2 cores, 4 agents, 3 seeds, the first "
        "quarter of the paper's traffic run and an eighth of its warehouse run.",
        # A prefix of the paper's runs (1.06M and 512K steps: whole chunks, evaluated every 5 and 4 chunks). Within
        # it, F = 1M and 4M both train the AIPs once, at the start: traffic compares F = 100K and 500K with the main
        # 1M; the warehouse compares 100K with 1M (the same schedule as its main 4M, run beside the ablation's).
        traffic=RunBudget(sizes=(4,), n_seeds=3, total_timesteps=1_056_000, eval_every=96_000, eval_episodes=10,
                          f_fractions=(0.025, 0.125, 0.25)),
        warehouse=RunBudget(sizes=(4,), n_seeds=3, total_timesteps=512_000, eval_every=51_200, eval_episodes=30,
                            f_fractions=(0.025, 0.25)),
        env_episodes=10,
        theory_models=20,
        theory_mc_samples=(100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000),
        scaling_steps=1_280,  # the fixed cost (10K GS data steps, AIP training) dominates the timed runs anyway
    ),
    "full4": Preset(
        name="full4",
        description="The paper's 4M steps per agent at 4 agents, 3 seeds (Figures 5 and 6, first panel, at their "
        "real length): a few hours per environment on 2 cores (notebook 07 projects them); resumable.",
        # Only the main F: the ablation is the quick preset's (and the paper preset's) job.
        traffic=RunBudget(sizes=(4,), n_seeds=3, total_timesteps=4_000_000, eval_every=100_000, eval_episodes=5,
                          f_fractions=(0.25,)),
        warehouse=RunBudget(sizes=(4,), n_seeds=3, total_timesteps=4_000_000, eval_every=100_000, eval_episodes=10,
                            f_fractions=(1.0,)),
        env_episodes=10,
        theory_models=20,
        theory_mc_samples=(100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000),
        scaling_steps=1_280,
    ),
    "scale": Preset(
        name="scale",
        description="The paper at scale: 4, 25 and 100 agents, 3 seeds, the first 576K (traffic) and 256K "
        "(warehouse) steps of the paper's 4M-step run (Figures 5 and 6, all three panels); its training took 26.7 "
        "worker CPU-hours and 1.3 hours of evaluation and data collection, about 14 hours on 2 cores (runtime "
        "records); resumable (make train PRESET=scale).",
        # Prefixes of the quick preset's runs: the same chunks, evaluation interval and episodes, so that a 4-agent
        # run here is the first 576K (256K) steps of the quick run, read from its records when they exist
        # (`analysis.published.longer_run`). 576K is the first evaluation of the quick traffic run past 512K steps;
        # 256K is the warehouse's fifth. Only the main F: the paper trained traffic at 1M (once within this budget)
        # and the warehouse at 4M (once).
        traffic=RunBudget(sizes=(4, 25, 100), n_seeds=3, total_timesteps=576_000, eval_every=96_000,
                          eval_episodes=10, f_fractions=(0.25,)),
        warehouse=RunBudget(sizes=(4, 25, 100), n_seeds=3, total_timesteps=256_000, eval_every=51_200,
                            eval_episodes=30, f_fractions=(1.0,)),
        env_episodes=10,
        theory_models=20,
        theory_mc_samples=(100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000),
        scaling_steps=1_280,
        timed_runs_preset="quick",
        ablation_preset="quick",
    ),
    "paper": Preset(
        name="paper",
        description="The authors' protocol: 4M steps per agent, 4 to 100 agents (days on 2 cores).",
        traffic=RunBudget(
            sizes=(4, 25, 49, 100), n_seeds=3, total_timesteps=4_000_000, eval_every=100_000, eval_episodes=5,
            ablation_size=49, ablation_seeds=3,
        ),
        warehouse=RunBudget(
            sizes=(4, 25, 49, 100), n_seeds=3, total_timesteps=4_000_000, eval_every=100_000, eval_episodes=10,
            ablation_seeds=3,
        ),
        env_episodes=50,
        theory_models=100,
        theory_mc_samples=(100, 1_000, 10_000, 100_000, 1_000_000),
        aip_agents=25,
        scaling_steps=19_200,
        scaling_aip_epochs=100,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called `name` ('smoke', 'quick', 'full4', 'scale' or 'paper')."""
    check_choice("preset", name, PRESET_NAMES)
    return PRESETS[name]


def use_preset(name: str) -> Preset:
    """The preset `name`, also sending figures and tables to its folder (`figures/` for quick)."""
    from dials_lib import paths

    preset = get_preset(name)
    paths.set_figures_dir(paths.preset_figures_dir(name))
    return preset


__all__ = ["PRESETS", "PRESET_NAMES", "Preset", "RunBudget", "get_preset", "use_preset"]
