"""Adam for DIALS's stacked networks, without `torch.optim`.

Why not `torch.optim.Adam`: building any `torch.optim` optimiser imports `torch._dynamo` (the compiler), which costs
every process ~73 MiB of private memory and ~2 s, although nothing here is compiled. With one main process and a
worker per core that is ~220 MiB of a DIALS run's total at N = 100, for no use.

`Adam` gives the same numbers as `torch.optim.Adam` with the same settings, bit for bit (tested):

- `fused=True` calls the CPU kernel that `torch.optim.Adam(fused=True)` calls (`torch._fused_adam_`), after the
  same step-count increment. PPO uses it.
- `fused=False` applies the elementwise operations of torch's default CPU path in its order, one parameter at a
  time. The AIPs use it.

Adam is elementwise, so one Adam over stacked [K, ...] parameters is K independent Adams, one per agent. The
state dict has torch's layout ('state' by parameter index with 'step', 'exp_avg', 'exp_avg_sq'; 'param_groups'),
so either optimiser can load the other's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch

BETAS = (0.9, 0.999)
"""Adam's decay rates of the first and second moment estimates (torch's defaults)."""
WHOLE_SLICE_MULTIPLE = 64
"""Per agent, the fused kernel steps a stacked parameter whole when every agent's slice holds a multiple of this
many elements (see `_per_agent_pieces`)."""


def _per_agent_pieces(params: list[torch.nn.Parameter], tensors: list[list[torch.Tensor]],
                      steps: list[torch.Tensor]) -> tuple[list[list[torch.Tensor]], list[torch.Tensor]]:
    """The fused kernel's tensor lists for a per-agent step: a parameter whose agent slices are
    `WHOLE_SLICE_MULTIPLE` elements long (or a multiple of it) whole, any other one slice by slice.

    Why: the kernel computes most elements in vector registers and the last `length % vector width` of a tensor
    one at a time, which rounds differently, and it splits a tensor between threads at multiples of 16 elements
    (a cache line). An agent's slice of a stacked tensor would thus get numbers that depend on which agents share
    the tensor, unless each slice is stepped as a tensor of its own, which costs one kernel dispatch per agent per
    parameter (for 300 stacked agents, 2,400 slices of a traffic policy's 8 parameters: about 24 ms a step against
    9 ms whole). A slice whose length is a multiple of 64 (of every vector width, 4 to 16 floats, and of the
    thread split) starts and ends on vector boundaries, so stepped whole every element takes the same path as
    stepped alone: the same numbers, bit for bit (tested), at the cost of one dispatch."""
    whole = [param[0].numel() % WHOLE_SLICE_MULTIPLE == 0 for param in params]
    pieces = [[piece for t, keep in zip(ts, whole, strict=True) for piece in ([t] if keep else t.unbind())]
              for ts in tensors]
    piece_steps = [step for step, param, keep in zip(steps, params, whole, strict=True)
                   for _ in range(1 if keep else len(param))]
    return pieces, piece_steps


class Adam:
    """Adam (no weight decay, no AMSGrad) over one group of parameters; `torch.optim.Adam`'s numbers and state."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8, fused: bool = False,
                 per_agent: bool = False):
        """Adam over `params` with learning rate `lr`; with `per_agent`, each slice along the first (agent) axis of
        every parameter is stepped as a tensor of its own, so that an agent's numbers do not depend on which
        agents share its stacked parameters (its group, the runs stacked with it)."""
        self.params = list(params)
        self.per_agent = per_agent
        if not self.params:
            raise ValueError("Adam got an empty parameter list")
        if lr < 0 or eps < 0:
            raise ValueError(f"lr and eps must be >= 0; got lr={lr}, eps={eps}")
        self.fused = fused
        self.param_groups = [{"lr": float(lr), "betas": BETAS, "eps": float(eps), "weight_decay": 0.0,
                              "amsgrad": False, "maximize": False, "fused": fused or None}]
        # A parameter's state is empty until its first step (a defaultdict, as in torch.optim).
        self.state: defaultdict[torch.nn.Parameter, dict[str, torch.Tensor]] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for param in self.params:
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    def _state_of(self, param: torch.nn.Parameter) -> dict[str, torch.Tensor]:
        state = self.state.get(param)
        if not state:  # zero moments and step count on a parameter's first step, as torch does
            state = self.state[param] = {
                "step": torch.tensor(0.0),
                "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
            }
        return state

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step on every parameter that has a gradient."""
        group = self.param_groups[0]
        lr, eps = group["lr"], group["eps"]
        beta1, beta2 = group["betas"]
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return
        states = [self._state_of(p) for p in params]
        steps = [s["step"] for s in states]
        if self.fused:
            torch._foreach_add_(steps, 1)
            tensors = [params, [p.grad for p in params], [s["exp_avg"] for s in states],
                       [s["exp_avg_sq"] for s in states]]
            if self.per_agent:
                tensors, steps = _per_agent_pieces(params, tensors, steps)
            torch._fused_adam_(
                *tensors, [], steps, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps,
                maximize=False, grad_scale=None, found_inf=None,
            )
            return
        for param, state in zip(params, states, strict=True):
            state["step"] += 1
            step = state["step"].item()
            step_size, correction = lr / (1 - beta1**step), (1 - beta2**step) ** 0.5
            tensors = (param, param.grad, state["exp_avg"], state["exp_avg_sq"])
            # per agent: each slice its own tensor, as with the fused kernel
            parts = zip(*(t.unbind() for t in tensors), strict=True) if self.per_agent else [tensors]
            for block, grad, exp_avg, exp_avg_sq in parts:
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / correction).add_(eps)
                block.addcdiv_(exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        """Moments and step counts by parameter index, and the settings: torch.optim's layout (tensors shared)."""
        index = {param: i for i, param in enumerate(self.params)}
        group = dict(self.param_groups[0], params=list(range(len(self.params))))
        return {"state": {index[p]: dict(s) for p, s in self.state.items() if s}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take moments, step counts and learning rate from a `state_dict()` of this class or of torch.optim.Adam."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            sizes = [len(g["params"]) for g in groups]
            raise ValueError(
                f"state_dict has parameter groups of sizes {sizes}; this Adam has one group of {len(self.params)}"
            )
        saved = state_dict["state"]
        self.state = defaultdict(dict)
        for i, param in enumerate(self.params):
            if i in saved:
                entry = saved[i]
                if entry["exp_avg"].shape != param.shape:
                    raise ValueError(f"parameter {i}: saved moments of shape {tuple(entry['exp_avg'].shape)}, "
                                     f"parameter of shape {tuple(param.shape)}")
                self.state[param] = {
                    "step": entry["step"].detach().clone().to(torch.float32),
                    "exp_avg": entry["exp_avg"].detach().to(param.dtype).clone(),
                    "exp_avg_sq": entry["exp_avg_sq"].detach().to(param.dtype).clone(),
                }
        self.param_groups[0]["lr"] = float(groups[0]["lr"])

