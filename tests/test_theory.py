"""Exact machinery of the tiny fPOSGs and the four appendix-A checks (Lemma 1, Prop. 1, Lemma 2, Theorem 1)."""

import itertools

import numpy as np
import pytest

from dials_lib.theory import checks
from dials_lib.theory.ialm import deterministic_policies, ialm_expected_return, ialm_q_values, initial_value, make_ialm
from dials_lib.theory.models import (
    ExactInfluence,
    extend_history,
    influence_by_counting,
    influence_by_enumeration,
    influence_by_filtering,
    n_histories,
    random_joint_policy,
    random_model,
    sample_rollouts,
    weighted_tv,
)


def test_random_model_tables_are_distributions():
    model = random_model(3, 3, 2, 2, 2, 3, seed=1)
    for table in (model.p0, model.trans, model.obs):
        assert np.all(table >= 0)
        np.testing.assert_allclose(table.sum(-1), 1.0, atol=1e-12)
    assert set(np.unique(model.source_map)) == {0, 1}
    assert np.all(np.abs(model.reward) <= 1.0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_agents": 1}, "n_agents"), ({"horizon": 0}, "horizon"), ({"n_sources": 5}, "n_sources"),
     ({"observe_state": True, "n_obs": 2}, "n_obs"), ({"independent_of_others": 4}, "independent_of_others")],
)
def test_random_model_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        random_model(**kwargs)


def test_transition_independence_removes_the_others_actions():
    model = random_model(3, 3, 2, 2, 2, 2, seed=0, independent_of_others=1)
    for j in (0, 2):
        np.testing.assert_array_equal(model.trans[j, :, 0], model.trans[j, :, 1])
    assert not np.allclose(model.trans[1, :, 0], model.trans[1, :, 1])


def test_history_codes_enumerate_every_history_once():
    actions, base = 2, 3
    for t in range(3):
        codes = np.arange(n_histories(actions, base, t))
        grid = np.array(list(itertools.product(codes, range(actions), range(base))))
        extended = extend_history(grid[:, 0], t, grid[:, 1], grid[:, 2], actions, base)
        assert sorted(extended) == list(range(n_histories(actions, base, t + 1)))
        np.testing.assert_array_equal(extended % base, grid[:, 2])  # the last element is code % base


@pytest.mark.parametrize("shape", checks.LEMMA1_SHAPES)
def test_two_exact_routes_agree_and_sum_to_one(shape):
    model = random_model(*shape, seed=3)
    policy = random_joint_policy(model, seed=4)
    enumerated = influence_by_enumeration(model, policy)
    for agent in range(model.shape[0]):
        filtered = influence_by_filtering(model, policy, agent)
        for t, (one, two) in enumerate(zip(enumerated[agent].dist, filtered.dist, strict=True)):
            assert one.shape == (n_histories(model.shape[2], model.shape[1], t), model.shape[4])
            np.testing.assert_allclose(one.sum(1), 1.0, atol=1e-12)
            np.testing.assert_allclose(one, two, atol=1e-12, rtol=0)
        np.testing.assert_allclose([w.sum() for w in enumerated[agent].weight], 1.0, atol=1e-12)


def test_influence_does_not_depend_on_the_agents_own_policy():
    model = random_model(2, 3, 2, 2, 2, 3, seed=5)
    first = random_joint_policy(model, seed=1)
    second = [p.copy() for p in first]
    for t, p in enumerate(random_joint_policy(model, seed=2)):
        second[t][0] = p[0]  # agent 0 changes its policy, agent 1 keeps its own
    for one, two in zip(influence_by_enumeration(model, first)[0].dist,
                        influence_by_enumeration(model, second)[0].dist, strict=True):
        np.testing.assert_allclose(one, two, atol=1e-12)
    changed = [p.copy() for p in first]
    for t, p in enumerate(random_joint_policy(model, seed=2)):
        changed[t][1] = p[1]  # now the other agent changes: the influence on agent 0 must move
    moved = influence_by_enumeration(model, changed)[0].dist
    assert max(np.abs(a - b).max() for a, b in zip(moved, influence_by_enumeration(model, first)[0].dist,
                                                   strict=True)) > 1e-3


def test_monte_carlo_converges_to_the_exact_influence():
    table = checks.check_lemma1_monte_carlo((300, 3_000, 30_000), n_repeats=2, seed=0)
    mean = table.groupby("episodes")["weighted TV"].mean()
    assert mean.is_monotonic_decreasing
    assert mean.iloc[-1] < 0.015
    assert -0.7 < checks.convergence_slope(table) < -0.3


def test_monte_carlo_estimate_is_far_from_another_models_influence():
    model = random_model(2, 3, 2, 2, 2, 3, seed=0)
    other = random_model(2, 3, 2, 2, 2, 3, seed=1)
    policy = random_joint_policy(model, seed=1000)
    estimate = influence_by_counting(model, sample_rollouts(model, policy, 30_000, seed=0), 0)
    right = influence_by_enumeration(model, policy)[0]
    wrong = influence_by_enumeration(other, policy)[0]
    assert weighted_tv(estimate, right) < 0.015
    assert weighted_tv(estimate, ExactInfluence(wrong.dist, right.weight)) > 0.1


def test_backward_induction_matches_brute_force_policy_evaluation():
    model = random_model(2, 2, 2, 2, 2, 2, seed=7)  # noisy observations: beliefs over the ALSH matter
    ialm = make_ialm(model, 0, influence_by_filtering(model, random_joint_policy(model, seed=8), 0).dist)
    returns = []
    for policy in deterministic_policies(2, 2, 2):
        returns.append(ialm_expected_return(ialm, policy))
        assert initial_value(ialm, ialm_q_values(ialm, policy)[0], policy) == pytest.approx(returns[-1], abs=1e-12)
    assert initial_value(ialm, ialm_q_values(ialm)[0]) == pytest.approx(max(returns), abs=1e-12)
    assert max(returns) - min(returns) > 0.1  # the policies really differ


def test_lemma1_check_reports_agreement():
    table = checks.check_lemma1_routes(2, seed=11)
    assert len(table) == 5  # a 2-agent and a 3-agent model
    assert table["max |route1 - route2|"].max() < 1e-12
    assert table["max |sum_u I - 1|"].max() < 1e-12


def test_proposition1_counts_on_small_models():
    generic = random_model(2, 2, 2, 1, 2, 3, seed=0)
    per_agent, policies, influences = checks.count_influences(generic)
    assert policies == 128**2
    assert (per_agent["distinct influences"] <= per_agent["policies of the others"]).all()
    assert (per_agent["distinct influences"] > 1).all()
    assert 1 < influences < policies
    independent = random_model(2, 2, 2, 1, 2, 3, seed=0, independent_of_others=0)
    per_agent, _, _ = checks.count_influences(independent)
    assert per_agent.loc[0, "distinct influences"] == 1
    assert per_agent.loc[1, "distinct influences"] > 1


def test_proposition1_joint_count_matches_direct_enumeration():
    model = random_model(2, 2, 2, 1, 2, 2, seed=2)
    policies = deterministic_policies(2, 1, 2)
    seen = set()
    for first, second in itertools.product(policies, repeat=2):
        joint = [np.stack([first[t], second[t]]) for t in range(2)]
        seen.add(tuple(checks._influence_key(e.dist) for e in influence_by_enumeration(model, joint)))
    _, n_policies, n_influences = checks.count_influences(model)
    assert n_policies == len(policies) ** 2 == 64
    assert n_influences == len(seen)


def test_perturbed_influence_stays_within_eps():
    rng = np.random.default_rng(0)
    base = [rng.dirichlet(np.ones(3), size=10) for _ in range(3)]
    moved = checks.perturbed_influence(base, 0.2, rng)
    for one, two in zip(base, moved, strict=True):
        np.testing.assert_allclose(two.sum(1), 1.0)
        assert np.abs(one - two).sum(1).max() == pytest.approx(0.2)


def test_lemma2_bound_holds_and_is_reasonably_tight():
    table = checks.check_lemma2(4, (0.01, 0.3, 1.0), seed=0)
    assert table["holds"].all()
    assert table["observed / bound"].max() > 0.5


@pytest.mark.parametrize(
    "wrong",
    [checks.linear_bound, lambda h, t, r, eps: checks.paper_bound(h, t, r, eps / 10)],
    ids=["R(H-t)eps", "eps/10"],
)
def test_lemma2_check_catches_a_wrong_constant(wrong):
    table = checks.check_lemma2(2, (0.01, 0.3), seed=0, bound=wrong, horizon=5)
    assert not table["holds"].all()


def test_lemma2_tight_constant_holds_and_is_attained():
    table = checks.check_lemma2(4, (0.01, 0.3), seed=0, bound=checks.tight_bound)
    assert table["holds"].all()
    assert table["observed / bound"].max() > 0.99


def test_lemma2_on_aohs_fails_under_noisy_observations_after_t0():
    eps = 0.01
    gaps = checks.q_gap_per_step(checks.noisy_observation_pair(eps, false_alarm=eps / 2))
    assert gaps[0] <= checks.paper_bound(2, 0, 1.0, eps)  # same initial belief: the bound holds at t = 0
    assert gaps[1] > 10 * checks.paper_bound(2, 1, 1.0, eps)  # beliefs differ after a rare observation


def test_bad_arguments_name_the_parameter():
    model = random_model()
    policy = random_joint_policy(model, seed=0)
    with pytest.raises(ValueError, match="n_episodes"):
        sample_rollouts(model, policy, 0, seed=0)
    with pytest.raises(ValueError, match="agent"):
        influence_by_filtering(model, policy, 2)
    with pytest.raises(ValueError, match="eps"):
        checks.perturbed_influence(influence_by_filtering(model, policy, 0).dist, -0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="influence at t=0"):
        make_ialm(model, 0, [np.ones((2, 2))])


def test_theorem1_random_pairs_are_consistent():
    table = checks.check_theorem1(6, (0.01, 0.1), seed=0)
    assert table["consistent"].all()
    assert table["gap condition"].any()


def test_theorem1_constructed_pairs_and_a_wrong_factor():
    table = checks.check_theorem1_constructed().set_index("case")
    assert table["consistent"].all()
    assert table.loc["condition met", "gap condition"] and table.loc["condition met", "same policy"]
    assert not table.loc["violated, policies differ", "same policy"]
    assert not table.loc["violated, same policy", "gap condition"]
    assert table.loc["violated, same policy", "same policy"]
    assert not checks.check_theorem1_constructed(factor=1.0)["consistent"].all()


def test_many_influences_induce_the_same_optimal_policy():
    table = checks.check_many_influences(2, 30, seed=0)
    assert (table["distinct optimal policies"] < table["influences"]).all()
    assert table["largest L1 distance within that group"].max() > 1.0
