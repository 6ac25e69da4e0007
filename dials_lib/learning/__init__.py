"""The learning core: stacked per-agent networks, independent PPO, influence predictors, local simulators.

- `networks`, `adam`: stacked [K, ...] networks (one batched matmul per layer) and their optimiser;
- `ppo_core`, `ppo`, `ppo_loop`, `policy_actor`: PPO math; `PPOGroup` (the learner of K agents) and states that
  join and split by agent; the training loop (`run_ppo`, `train_steps`); the acting part of the policies;
- `influence`: approximate influence predictors (AIPs) and their GS data sets (Algorithm 2);
- `ials`: influence-augmented local simulators (Algorithm 3); how well AIPs predict is measured in
  `dials_lib.analysis.influence_eval`;
- `controllers`: random, hand-coded and policy controllers;
- `flops`: FLOPs per agent-step of the networks, counted from the hyperparameters.

Imports only the foundation modules and `dials_lib.envs`.
"""
