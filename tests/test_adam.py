"""dials_lib.learning.adam: torch.optim.Adam's numbers and state layout, without importing torch's compiler."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from dials_lib.learning.adam import Adam


def stacked_params(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((4, 7, 3), (4, 3), (4, 1))]


def run_steps(ours: Adam, theirs: torch.optim.Optimizer, a: list, b: list, first: int, last: int) -> None:
    """Same gradients into both; lr changes every step; the last parameter skips every third step (no grad)."""
    for t in range(first, last):
        generator = torch.Generator().manual_seed(1000 + t)
        grads = [torch.randn(p.shape, generator=generator) for p in a]
        for params in (a, b):
            for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
                param.grad = None if (i == 2 and t % 3 == 0) else grad.clone()
        ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = 1e-2 * (1 - t / 40)
        ours.step()
        theirs.step()


@pytest.mark.parametrize("fused", [False, True], ids=["elementwise", "fused"])
def test_adam_equals_torch_adam_bit_for_bit(fused: bool) -> None:
    a, b = stacked_params(0), stacked_params(0)
    ours = Adam(a, lr=1e-2, eps=1e-5, fused=fused)
    theirs = torch.optim.Adam(b, lr=1e-2, eps=1e-5, fused=fused)
    run_steps(ours, theirs, a, b, 0, 25)
    for mine, reference, initial in zip(a, b, stacked_params(0), strict=True):
        assert torch.equal(mine, reference)
        assert (mine - initial).abs().min() > 0  # every element moved: the comparison is not of untouched tensors
    assert float(ours.state[a[2]]["step"]) == float(theirs.state[b[2]]["step"]) == 16  # 25 steps, 9 skipped


@pytest.mark.parametrize("fused", [False, True], ids=["elementwise", "fused"])
def test_state_dicts_load_across_torch_and_ours(fused: bool) -> None:
    a, b = stacked_params(1), stacked_params(1)
    ours, theirs = Adam(a, lr=1e-2, fused=fused), torch.optim.Adam(b, lr=1e-2, fused=fused)
    run_steps(ours, theirs, a, b, 0, 10)
    # Swap the optimisers' states: each continues from the other's, and both stay equal.
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    ours, theirs = Adam(a, lr=0.0, fused=fused), torch.optim.Adam(b, lr=0.0, fused=fused)
    ours.load_state_dict(theirs_state)
    theirs.load_state_dict(ours_state)
    run_steps(ours, theirs, a, b, 10, 20)
    for mine, reference in zip(a, b, strict=True):
        assert torch.equal(mine, reference)
    assert ours.state_dict()["state"][0]["exp_avg"] is not theirs_state["state"][0]["exp_avg"]


def test_adam_refuses_a_state_dict_of_other_parameters() -> None:
    ours = Adam(stacked_params(0), lr=1e-3)
    with pytest.raises(ValueError, match="one group of 3"):
        ours.load_state_dict(Adam(stacked_params(0)[:2], lr=1e-3).state_dict())
    other = Adam([torch.nn.Parameter(torch.zeros(2, 2)), *stacked_params(0)[1:]], lr=1e-3)
    for p in other.params:
        p.grad = torch.ones_like(p)
    other.step()
    with pytest.raises(ValueError, match="parameter 0: saved moments of shape"):
        ours.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([], lr=1e-3)


def test_training_never_imports_torchs_compiler() -> None:
    """A PPO update and AIP training in a fresh process: torch._dynamo (~73 MiB per process) stays unloaded."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from dials_lib.hyperparameters import AIPConfig, paper_hyperparameters, PolicyConfig
        from dials_lib.learning.influence import InfluenceData, make_predictor, train_predictor
        from dials_lib.learning.ppo import PPOGroup

        group = PPOGroup(2, 3, 2, PolicyConfig(architecture="fnn", hidden_sizes=(8, 8), sequence_length=1),
                         paper_hyperparameters("traffic").ppo, 1_000, seed=0)
        while not group.ready():
            group.act(np.zeros((2, 3), np.float32))
            group.observe(np.ones(2, np.float32), np.zeros(2, bool))
        group.update(np.zeros((2, 3), np.float32))
        config = AIPConfig(architecture="fnn", hidden_layers=1, hidden_size=8, batch_size=8, epochs=1)
        model = make_predictor(config, 3, (2,), seed=0, agent_ids=[0, 1])
        data = InfluenceData(np.ones((2, 2, 8, 3), np.float32), np.ones((2, 2, 8, 1), np.int64),
                             np.zeros((2, 2, 8), np.int64), np.zeros((2, 2, 8), np.float32))
        train_predictor(model, data, config, seed=0, agent_ids=[0, 1])
        assert group.n_updates == 1
        print("torch._dynamo" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def per_agent_and_apart(fused: bool, per_agent: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """20 Adam steps on 12 stacked agents (7 weights each), and on groups of 4, 2 and 1 of them."""
    generator = torch.Generator().manual_seed(4)
    sizes = [4, 2, 1, 1, 4]
    stacked = torch.nn.Parameter(torch.randn(sum(sizes), 7, generator=generator))
    groups = [torch.nn.Parameter(block.detach().clone()) for block in stacked.split(sizes)]
    together = Adam([stacked], lr=1e-2, eps=1e-5, fused=fused, per_agent=per_agent)
    apart = [Adam([p], lr=1e-2, eps=1e-5, fused=fused, per_agent=per_agent) for p in groups]
    for _ in range(20):
        grad = torch.randn(stacked.shape, generator=generator)
        stacked.grad = grad.clone()
        together.step()
        for p, g, optimiser in zip(groups, grad.split(sizes), apart, strict=True):
            p.grad = g.clone()
            optimiser.step()
    return list(stacked.detach().split(sizes)), [p.detach() for p in groups]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "foreach-order"])
def test_per_agent_steps_give_every_agent_its_numbers_in_any_group(fused: bool) -> None:
    """Per agent, an agent's parameters get the same numbers whichever agents share its stacked tensor. (On the
    machine this was written on, the fused kernel over a whole [12, 7] tensor gets some of them wrong by rounding:
    which elements land in its scalar tail depends on the tensor's length.)"""
    together, apart = per_agent_and_apart(fused, per_agent=True)
    assert all(torch.equal(a, b) for a, b in zip(together, apart, strict=True))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_fused_step_of_whole_aligned_parameters_equals_the_slice_by_slice_step(monkeypatch, threads) -> None:
    """Per agent, the fused step takes a parameter whole when its agent slices are multiples of 64 elements long
    (one kernel call instead of one per agent): bit for bit what stepping every slice alone gives, with one thread or
    two, for aligned and unaligned shapes of the paper's networks side by side."""
    from dials_lib.learning import adam

    shapes = [(40, 256), (1, 256), (256, 128), (128, 2), (1, 2), (1, 1), (3, 64), (5, 7)]

    def train(multiple: int) -> list[torch.Tensor]:
        monkeypatch.setattr(adam, "WHOLE_SLICE_MULTIPLE", multiple)
        generator = torch.Generator().manual_seed(5)
        params = [torch.nn.Parameter(torch.randn(12, *shape, generator=generator)) for shape in shapes]
        optimiser = Adam(params, lr=3e-3, eps=1e-5, fused=True, per_agent=True)
        for _ in range(25):
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator)
            optimiser.step()
        return [p.detach() for p in params]

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        every_slice_alone = train(multiple=10**12)  # no slice length is a multiple: all stepped slice by slice
        whole_where_aligned = train(multiple=adam.WHOLE_SLICE_MULTIPLE)
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(a, b) for a, b in zip(every_slice_alone, whole_where_aligned, strict=True))


def test_only_parameters_with_aligned_agent_slices_are_stepped_whole() -> None:
    from dials_lib.learning.adam import _per_agent_pieces

    params = [torch.nn.Parameter(torch.zeros(3, 2, 64)), torch.nn.Parameter(torch.zeros(3, 1, 2))]
    steps = [torch.tensor(1.0), torch.tensor(2.0)]
    pieces, piece_steps = _per_agent_pieces(params, [params], steps)
    assert [tuple(t.shape) for t in pieces[0]] == [(3, 2, 64), (1, 2), (1, 2), (1, 2)]
    assert [float(s) for s in piece_steps] == [1.0, 2.0, 2.0, 2.0]
