"""The per-agent fused Adam step: every agent's slice stepped alone against whole tensors where the slices align.

Run `python benchmarks/adam.py`; writes benchmarks/results/adam.json and adam.md (about a minute).

PPO steps its stacked networks with `dials_lib.learning.adam.Adam(fused=True, per_agent=True)`, whose numbers must
not depend on which agents share a stacked tensor. It used to step every agent's slice of every parameter as a
tensor of its own; it now steps whole every parameter whose slices are a multiple of `WHOLE_SLICE_MULTIPLE` elements
long (bit-equal, tested in tests/test_adam.py), and slice by slice only the others (the paper's networks: the
output layers' biases). Each row times one Adam step over the paper's policy of `env` stacked for `agents` agents
(3 seeds of 100 agents is 300), the two layouts interleaved so that they meet the same background load, in CPU
seconds of this thread (torch single-threaded), and one whole PPO update (3 epochs of minibatches over the 128-step
buffer) both ways, whose share says what the change is worth to a training run's update.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from _common import write_results

from dials_lib.envs import get_spec
from dials_lib.hyperparameters import paper_hyperparameters
from dials_lib.learning import adam
from dials_lib.learning.ppo import PPOGroup

SLICE_BY_SLICE = 10**12
"""A `WHOLE_SLICE_MULTIPLE` no slice length reaches: every slice stepped alone (the former layout)."""
LAYOUTS = {"every slice alone": SLICE_BY_SLICE, "whole where aligned": adam.WHOLE_SLICE_MULTIPLE}
REPEATS = 5


def cpu_seconds(fn: Callable[[], None], calls: int) -> float:
    """CPU seconds of this thread per call of `fn` (after one warm-up call)."""
    fn()
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


def group_with_buffer(env: str, n_agents: int, rng: np.random.Generator) -> tuple[PPOGroup, np.ndarray]:
    """The paper's PPO group for `env` with a full buffer of random observations and rewards."""
    hp, spec = paper_hyperparameters(env), get_spec(env)
    group = PPOGroup(n_agents, spec.obs_dim, spec.n_actions, hp.policy, hp.ppo, 4_000_000, 0)
    for _ in range(hp.ppo.buffer_size):
        group.act(rng.random((n_agents, spec.obs_dim), dtype=np.float32))
        group.observe(rng.random(n_agents, dtype=np.float32), np.zeros(n_agents, dtype=bool))
    return group, rng.random((n_agents, spec.obs_dim), dtype=np.float32)


def measure(env: str, n_agents: int) -> list[dict[str, object]]:
    """One Adam step and one PPO update of `n_agents` stacked agents, in both layouts (fastest of REPEATS)."""
    rng = np.random.default_rng(0)
    group, last_obs = group_with_buffer(env, n_agents, rng)
    for param in group.policy.parameters():
        param.grad = torch.randn_like(param) * 1e-3
    step_s = {name: float("inf") for name in LAYOUTS}
    update_s = dict(step_s)
    for _ in range(REPEATS):
        for name, multiple in LAYOUTS.items():
            adam.WHOLE_SLICE_MULTIPLE = multiple
            step_s[name] = min(step_s[name], cpu_seconds(group.optimizer.step, calls=5))
            # an update clears the buffer: refill it (not timed), then time the update alone
            group, last_obs = group_with_buffer(env, n_agents, rng)
            start = time.thread_time()
            group.update(last_obs)
            update_s[name] = min(update_s[name], time.thread_time() - start)
    adam.WHOLE_SLICE_MULTIPLE = LAYOUTS["whole where aligned"]
    params = list(group.policy.parameters())
    return [{"env": env, "agents": n_agents, "layout": name,
             "tensors per step": sum(1 if p[0].numel() % multiple == 0 else len(p) for p in params),
             "Adam step ms": step_s[name] * 1e3, "PPO update s": update_s[name],
             "Adam share of the update": step_s[name] * updates_per_call(group) / update_s[name]}
            for name, multiple in LAYOUTS.items()]


def updates_per_call(group: PPOGroup) -> int:
    """Adam steps in one PPO update: epochs times minibatches."""
    config = group.config
    return config.epochs * (config.buffer_size // config.minibatch_size)


def main() -> None:
    torch.set_num_threads(1)
    rows = [row for env in ("traffic", "warehouse") for n in (4, 25, 100, 300) for row in measure(env, n)]
    goals = []
    for env in ("traffic", "warehouse"):
        for n in (100, 300):
            before, after = (next(r for r in rows if r["env"] == env and r["agents"] == n and r["layout"] == name)
                             for name in LAYOUTS)
            goals.append({"goal": f"{env}, {n} agents: a PPO update no slower", "measured":
                          f"{before['PPO update s']:.3f} s -> {after['PPO update s']:.3f} s "
                          f"({before['PPO update s'] / after['PPO update s']:.2f}x); Adam step "
                          f"{before['Adam step ms']:.1f} -> {after['Adam step ms']:.1f} ms",
                          "met": after["PPO update s"] <= before["PPO update s"]})
    write_results("adam", rows, goals, "Per-agent fused Adam: every slice alone against whole where aligned",
                  notes=__doc__.split("\n\n", 2)[2])


if __name__ == "__main__":
    main()
