"""The contract every registered sampling strategy keeps, checked for each one as scikit-learn's `check_estimator`
checks estimators: it plans valid archs of the space, is deterministic by its seed whatever the global RNGs, resumes
exactly from its saved state, and takes the `rescore_banks` hook. A strategy registered in
`supernet.training.registry` runs these checks without a line added here; its own behaviour has its own test."""

import dataclasses
import hashlib
import json
import random

import numpy as np
import pytest

from supernet.documents import DocumentError, check_header
from supernet.flops import arch_mflops
from supernet.space import TINY
from supernet.training import SAMPLERS, SubnetSampler, default_config, get_sampler
from supernet.training.samplers import LEGACY_STATE_FORMAT, STATE_KIND, STATE_VERSION
from supernet.validation import validate

#: Small banks and q = 0.5, so performance-aware strategies exploit within the run.
CONFIG = dataclasses.replace(default_config(TINY), bank_size=6, big_bank_size=4, q0=0.5)
STEPS, EPOCH = 24, 8
ROLES = {"max", "uniform", "min"}


def _ce(arch) -> float:
    """A synthetic, deterministic clean-batch CE in [1, 3)."""
    return 1.0 + 2.0 * int(hashlib.sha256(arch.to_json().encode()).hexdigest()[:8], 16) / 2 ** 32


class Scorer:
    """The trainer's side of `rescore_banks`: a CE per arch, every call recorded."""

    def __init__(self):
        self.calls = []

    def __call__(self, archs):
        self.calls.append(list(archs))
        return [_ce(a) for a in archs]


def _refuse(archs):
    raise AssertionError(f"nothing to re-score, yet asked for {len(archs)} archs")


def drive(sampler: SubnetSampler, steps, scorer, before_step=lambda step: None):
    """What the trainer does with a sampler: `rescore_banks` of every level at an epoch's first batch and of the
    step's level at some exploring steps, `sample`, `observe` the clean-batch CE, `end_epoch`. Returns the plans
    and the state after each step."""
    plans, states = [], []
    for step in steps:
        before_step(step)
        epoch, index = divmod(step, EPOCH)
        if index == 0:
            sampler.rescore_banks(range(len(sampler.config.levels)), scorer)
        plan = sampler.sample(step, epoch)
        if plan.feedback and index % 2:
            sampler.rescore_banks([plan.level_index], scorer)
        sampler.observe(plan, [_ce(s.arch) if i in plan.feedback else None for i, s in enumerate(plan.subnets)])
        if index == EPOCH - 1:
            sampler.end_epoch(epoch)
        plans.append(plan)
        states.append(json.dumps(sampler.state_dict()))
    return plans, states


@pytest.fixture(params=sorted(SAMPLERS))
def name(request) -> str:
    return request.param


def test_registered_under_its_name(name):
    cls = SAMPLERS[name]
    assert issubclass(cls, SubnetSampler) and cls.name == name
    assert type(get_sampler(name, TINY, CONFIG, seed=0)) is cls


def test_plans_valid_archs_of_the_space(name):
    sampler = get_sampler(name, TINY, CONFIG, seed=1)
    plans, _ = drive(sampler, range(STEPS), Scorer())
    for step, plan in enumerate(plans):
        assert (plan.step, plan.epoch) == (step, step // EPOCH) and plan.subnets
        assert set(plan.roles) <= ROLES
        assert len(set(plan.feedback)) == len(plan.feedback) and all(0 <= i < len(plan.subnets) for i in plan.feedback)
        if plan.level is not None:
            assert sampler.config.levels[plan.level_index] == plan.level
        for sub in plan.subnets:
            assert not validate(sub.arch, TINY), sub.arch
            assert sub.mflops == arch_mflops(sub.arch, TINY)


def test_deterministic_by_seed_whatever_the_global_rngs(name):
    plans, states = drive(get_sampler(name, TINY, CONFIG, seed=5), range(STEPS), Scorer())

    def scramble(step):
        np.random.seed(1000 + step)
        random.seed(step)

    again, again_states = drive(get_sampler(name, TINY, CONFIG, seed=5), range(STEPS), Scorer(), scramble)
    assert again == plans and again_states == states
    other, _ = drive(get_sampler(name, TINY, CONFIG, seed=6), range(STEPS), Scorer())
    assert [p.archs for p in other] != [p.archs for p in plans]


def test_saved_state_resumes_exactly(name):
    plans, states = drive(get_sampler(name, TINY, CONFIG, seed=7), range(STEPS), Scorer())
    state = json.loads(states[-1])
    assert check_header(state, STATE_KIND, STATE_VERSION) == STATE_VERSION and state["strategy"] == name
    for k in (2, EPOCH - 1, EPOCH + 3):  # mid-epoch, at an epoch's end, in a later epoch
        resumed = get_sampler(name, TINY, CONFIG, seed=7)
        resumed.load_state_dict(json.loads(states[k]))
        rest, rest_states = drive(resumed, range(k + 1, STEPS), Scorer())
        assert rest == plans[k + 1:] and rest_states == states[k + 1:], k
        with pytest.raises(ValueError, match="does not follow"):
            resumed.sample(k, k // EPOCH)


def test_state_of_an_earlier_release_resumes_and_others_are_refused(name):
    """A checkpoint written before the header convention carries {"format": LEGACY_STATE_FORMAT} (no version)
    and otherwise the same state: it still resumes exactly; a state of another kind is refused by name."""
    plans, states = drive(get_sampler(name, TINY, CONFIG, seed=7), range(STEPS), Scorer())
    state = json.loads(states[3])
    legacy = {"format": LEGACY_STATE_FORMAT, **{k: v for k, v in state.items() if k not in ("format", "version")}}
    resumed = get_sampler(name, TINY, CONFIG, seed=7)
    resumed.load_state_dict(legacy)
    assert drive(resumed, range(4, STEPS), Scorer())[0] == plans[4:]
    with pytest.raises(DocumentError, match="sampler-state"):
        get_sampler(name, TINY, CONFIG, seed=7).load_state_dict({**legacy, "format": "elasticvit-deploy.other"})


def test_rescore_banks_hook(name):
    sampler = get_sampler(name, TINY, CONFIG, seed=3)
    sampler.rescore_banks(range(len(CONFIG.levels)), _refuse)  # a new sampler has scored nothing yet
    SubnetSampler.rescore_banks(sampler, range(len(CONFIG.levels)), _refuse)  # the protocol's default: a no-op
    scorer = Scorer()
    drive(sampler, range(STEPS), scorer)
    for archs in scorer.calls:
        assert archs and all(not validate(a, TINY) for a in archs)
