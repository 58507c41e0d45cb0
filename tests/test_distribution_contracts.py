"""Every tdrl distribution's contract, property by property, against TorchRL's.

``TORCHRL`` holds TorchRL's behaviour as facts (observed with torchrl 0.14.1 and read in its
source at ae9719f17b15), not TorchRL at run time. ``DELIBERATE`` lists the properties where
tdrl differs on purpose, each with the fragment of the README's "deliberately differs" row
that gives the reason (``test_every_deliberate_difference_is_in_the_readme`` checks it is
there); every other property must equal TorchRL's. The actor tests check what
``ProbabilisticActor`` writes in every exploration type, and that a discrete actor's actions
are accepted by its discrete spec, in the spec's dtype.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import distributions as D

from tdrl.data import Categorical, Composite, OneHot
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    MLP,
    Delta,
    IndependentNormal,
    MaskedCategorical,
    MaskedOneHotCategorical,
    NormalParamExtractor,
    OneHotCategorical,
    ProbabilisticActor,
    SafeModule,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
)

B, E, N = 2, 3, 4  # batch, continuous event size, categories
F32, I64 = "torch.float32", "torch.int64"
RAISES = "raises"
MASK = torch.tensor([[True, False, True, True], [False, True, True, False]])


def _make(name: str, grad: bool = False) -> D.Distribution:
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(B, E, generator=g).requires_grad_(grad)
    scale = (torch.rand(B, E, generator=g) + 0.5).requires_grad_(grad)
    logits = torch.randn(B, N, generator=g).requires_grad_(grad)
    return {
        "TanhNormal": lambda: TanhNormal(loc, scale),
        "IndependentNormal": lambda: IndependentNormal(loc, scale),
        "TruncatedNormal": lambda: TruncatedNormal(loc, scale),
        "Delta": lambda: Delta(loc),
        "TanhDelta": lambda: TanhDelta(loc),
        "OneHotCategorical": lambda: OneHotCategorical(logits=logits),
        "MaskedCategorical": lambda: MaskedCategorical(logits=logits, mask=MASK),
        "MaskedOneHotCategorical": lambda: MaskedOneHotCategorical(logits=logits, mask=MASK),
    }[name]()


def _t(x: Any) -> Any:
    """A tensor as ``(dtype, shape)``; anything else as is."""
    if isinstance(x, torch.Tensor):
        return (str(x.dtype), tuple(x.shape))
    return x


def _describe(fn: Callable[[], Any]) -> Any:
    try:
        return _t(fn())
    except Exception:  # noqa: BLE001 (TorchRL's facts record "raises", whatever the type)
        return RAISES


def _lp_kind(fn: Callable[[], torch.Tensor]) -> str:
    """What a log-prob is: ``raises``, ``nan``, ``-inf``, ``+inf`` or ``finite`` (all entries alike)."""
    try:
        lp = fn()
    except Exception:  # noqa: BLE001
        return RAISES
    if bool(lp.isnan().all()):
        return "nan"
    if bool((lp == -math.inf).all()):
        return "-inf"
    if bool((lp == math.inf).all()):
        return "+inf"
    assert bool(lp.isfinite().all()), lp
    return "finite"


def _out_of_support(name: str, d: D.Distribution) -> torch.Tensor:
    """A value outside the support: beyond the bounds, off the point, or a masked category."""
    if name in ("MaskedCategorical",):
        return torch.tensor([1, 0])  # masked in both rows
    if name in ("OneHotCategorical", "MaskedOneHotCategorical"):
        if name == "OneHotCategorical":
            return torch.zeros(B, N, dtype=torch.long)  # no hot entry (argmax reads category 0)
        return torch.nn.functional.one_hot(torch.tensor([1, 0]), N)  # masked categories
    return torch.full((B, E), 5.0)  # outside [-1, 1], and not the Delta's point


def _nan_value(name: str) -> torch.Tensor | None:
    if "Categorical" in name:
        return None
    return torch.full((B, E), math.nan)


# ---- TorchRL's facts ---------------------------------------------------------------------
_CONT = {"batch_shape": (B,), "event_shape": (E,), "sample": (F32, (B, E)),
         "sample_5": (F32, (5, B, E)), "rsample": (F32, (B, E)), "mode": (F32, (B, E)),
         "deterministic_sample": (F32, (B, E)), "mean": (F32, (B, E)), "entropy": (F32, (B,)),
         "support": ("_IndependentConstraint", False, 1), "log_prob_sample": "finite",
         "log_prob_nan": "nan", "sample_grad": False, "rsample_grad": True, "has_rsample": True}
_ONE_HOT = {"batch_shape": (B,), "event_shape": (), "sample": (I64, (B, N)),
            "sample_5": (I64, (5, B, N)), "rsample": (F32, (B, N)), "mode": (I64, (B, N)),
            "deterministic_sample": (I64, (B, N)), "mean": (F32, (B,)), "entropy": (F32, (B,)),
            "support": ("_IntegerInterval", True, 0), "log_prob_sample": "finite",
            "log_prob_nan": None, "sample_grad": False, "rsample_grad": True,
            "has_rsample": False}
TORCHRL: dict[str, dict[str, Any]] = {
    "TanhNormal": {**_CONT, "mode": RAISES, "mean": RAISES, "entropy": RAISES,
                   "support": RAISES, "log_prob_out": "finite"},
    "IndependentNormal": {**_CONT, "log_prob_out": "finite"},
    "TruncatedNormal": {**_CONT, "log_prob_out": "-inf"},
    "Delta": {**_CONT, "has_rsample": False, "support": RAISES, "entropy": RAISES,
              "log_prob_sample": "+inf", "log_prob_out": "-inf", "log_prob_nan": "-inf",
              "sample_grad": True},
    "TanhDelta": {**_CONT, "has_rsample": False, "mean": RAISES, "entropy": RAISES,
                  "log_prob_sample": "+inf", "log_prob_out": "-inf"},
    "OneHotCategorical": {**_ONE_HOT, "log_prob_out": "finite"},
    "MaskedCategorical": {**_ONE_HOT, "sample": (I64, (B,)), "sample_5": (I64, (5, B)),
                          "rsample": RAISES, "mode": (I64, (B,)),
                          "deterministic_sample": (I64, (B,)), "rsample_grad": RAISES,
                          "log_prob_out": "-inf"},
    "MaskedOneHotCategorical": {**_ONE_HOT, "log_prob_out": "-inf"},
}

# ---- where tdrl differs on purpose: (distribution, property) -> (tdrl's value, README row) --
_DELTA_RSAMPLE = "`Delta` / `TanhDelta` have `has_rsample = False`"
_DELTA_SUPPORT = "`Delta` has no `support`"
_POINT_ENTROPY = "`Delta` / `TanhDelta` `entropy()` raises"
_TANH_MOMENTS = "`TanhNormal.mean` / `entropy()` raise"
_ONE_HOT_EVENT = "`OneHotCategorical` has event shape `()`"
_ONE_HOT_MEAN = "one-hot categoricals' `mean` is `Categorical`'s NaN"
DELIBERATE: dict[tuple[str, str], tuple[Any, str]] = {
    ("TanhNormal", "mode"): ((F32, (B, E)), "`TanhNormal.mode` raises"),
    ("TanhNormal", "mean"): ((F32, (B, E)), _TANH_MOMENTS),
    ("TanhNormal", "entropy"): ((F32, (B,)), _TANH_MOMENTS),
    ("TanhNormal", "support"): (("_IndependentConstraint", False, 1),
                                "`TanhNormal.support` raises `TypeError`"),
    ("Delta", "has_rsample"): (True, _DELTA_RSAMPLE),
    ("Delta", "sample_grad"): (False, _DELTA_RSAMPLE),
    ("Delta", "support"): (("_Real", False, 0), _DELTA_SUPPORT),
    ("Delta", "entropy"): ((F32, (B,)), _POINT_ENTROPY),
    ("Delta", "log_prob_sample"): ("finite", "`Delta.log_prob` / `TanhDelta.log_prob` is `+inf`"),
    ("Delta", "log_prob_nan"): ("nan", "`Delta.log_prob` of a NaN is `-inf`"),
    ("TanhDelta", "has_rsample"): (True, _DELTA_RSAMPLE),
    ("TanhDelta", "mean"): ((F32, (B, E)), "`TanhDelta.mean` raises"),
    ("TanhDelta", "entropy"): ((F32, (B,)), _POINT_ENTROPY),
    ("TanhDelta", "log_prob_sample"): (
        "finite", "`Delta.log_prob` / `TanhDelta.log_prob` is `+inf`"),
    ("OneHotCategorical", "event_shape"): ((N,), _ONE_HOT_EVENT),
    ("OneHotCategorical", "support"): (("_OneHot", True, 1), _ONE_HOT_EVENT),
    ("OneHotCategorical", "mean"): ((F32, (B, N)), _ONE_HOT_MEAN),
    ("MaskedOneHotCategorical", "event_shape"): ((N,), _ONE_HOT_EVENT),
    ("MaskedOneHotCategorical", "support"): (("_OneHot", True, 1), _ONE_HOT_EVENT),
    ("MaskedOneHotCategorical", "mean"): ((F32, (B, N)), _ONE_HOT_MEAN),
}

NAMES = list(TORCHRL)


def _expected(name: str, prop: str) -> Any:
    return DELIBERATE[(name, prop)][0] if (name, prop) in DELIBERATE else TORCHRL[name][prop]


def _observe(name: str, prop: str) -> Any:
    d = _make(name, grad=prop.endswith("_grad"))
    if prop == "has_rsample":
        return d.has_rsample
    if prop in ("batch_shape", "event_shape"):
        return tuple(getattr(d, prop))
    if prop == "sample_5":
        return _describe(lambda: d.sample((5,)))
    if prop in ("sample", "rsample"):
        return _describe(getattr(d, prop))
    if prop == "entropy":
        return _describe(d.entropy)
    if prop in ("mode", "deterministic_sample", "mean"):
        return _describe(lambda: getattr(d, prop))
    if prop == "support":
        return _describe(lambda: (type(d.support).__name__, d.support.is_discrete,
                                  d.support.event_dim))
    if prop == "log_prob_sample":
        return _lp_kind(lambda: d.log_prob(d.sample()))
    if prop == "log_prob_out":
        return _lp_kind(lambda: d.log_prob(_out_of_support(name, d)))
    if prop == "log_prob_nan":
        value = _nan_value(name)
        return None if value is None else _lp_kind(lambda: d.log_prob(value))
    if prop in ("sample_grad", "rsample_grad"):
        return _describe(lambda: getattr(d, prop[: -len("_grad")])().requires_grad)
    raise AssertionError(prop)


PROPS = ["has_rsample", "batch_shape", "event_shape", "sample", "sample_5", "rsample", "mode",
         "deterministic_sample", "mean", "support", "entropy", "log_prob_sample",
         "log_prob_out", "log_prob_nan", "sample_grad", "rsample_grad"]


@pytest.mark.parametrize("prop", PROPS)
@pytest.mark.parametrize("name", NAMES)
def test_property_matches_torchrl_or_is_a_listed_difference(name: str, prop: str) -> None:
    assert _observe(name, prop) == _expected(name, prop)


def test_every_deliberate_difference_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("## Where tdrl deliberately differs from TorchRL")
    table = readme[start : readme.index("\n\n", readme.index("| TorchRL | tdrl |", start))]
    for (name, prop), (_, row) in DELIBERATE.items():
        assert row in table, f"{name}.{prop}: no row containing {row!r} in the README's table"
        assert _expected(name, prop) != TORCHRL[name][prop], (name, prop)  # a real difference


def test_readme_audit_table_covers_every_distribution() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("### Distribution contracts against TorchRL")
    audit = readme[start : readme.index("\n## ", start)]
    for name in NAMES:
        assert name in audit, name


# ---- values behind the shapes -----------------------------------------------------------
def test_deterministic_values_match_torchrl() -> None:
    g = torch.Generator().manual_seed(1)
    loc, scale = torch.randn(B, E, generator=g), torch.rand(B, E, generator=g) + 0.5
    torch.testing.assert_close(TanhNormal(loc, scale).deterministic_sample, loc.tanh())
    torch.testing.assert_close(TanhNormal(loc, scale, low=-2.0, high=3.0).deterministic_sample,
                               0.5 + 2.5 * loc.tanh())
    d = IndependentNormal(loc, scale)
    torch.testing.assert_close(d.deterministic_sample, loc)
    torch.testing.assert_close(d.mode, loc)
    d = TruncatedNormal(loc, scale)
    torch.testing.assert_close(d.deterministic_sample, d.mean)
    torch.testing.assert_close(d.mode, loc.clamp(-1.0, 1.0))
    torch.testing.assert_close(TanhDelta(loc).deterministic_sample, loc.tanh())
    torch.testing.assert_close(Delta(loc).deterministic_sample, loc)


def test_truncated_normal_moments_match_torchrl() -> None:
    """TorchRL's values for seed-0 parameters (mean of row 0, entropy of both rows)."""
    d = _make("TruncatedNormal")
    torch.testing.assert_close(d.mean[0], torch.tensor([0.72939, -0.15866, -0.65076]),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(d.entropy(), torch.tensor([0.22624, 1.85717]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["OneHotCategorical", "MaskedCategorical",
                                  "MaskedOneHotCategorical"])
def test_discrete_entropy_is_the_categorical_entropy(name: str) -> None:
    d = _make(name)
    p = d.probs
    expected = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)
    torch.testing.assert_close(d.entropy(), expected)


def test_one_hot_mode_on_ties_is_one_hot() -> None:
    """TorchRL's one-hot mode marks every tied maximum (``[1, 1, 1, 1]`` for zero logits),
    which is not a one-hot action; tdrl's is the first maximum, as ``argmax``."""
    z = torch.zeros(B, N)
    assert OneHotCategorical(logits=z).mode.tolist() == [[1, 0, 0, 0], [1, 0, 0, 0]]
    assert MaskedOneHotCategorical(logits=z, mask=MASK).mode.tolist() == [[1, 0, 0, 0],
                                                                          [0, 1, 0, 0]]
    assert MaskedCategorical(logits=z, mask=MASK).mode.tolist() == [0, 1]  # as TorchRL


def test_masked_neg_inf_is_the_log_prob_of_a_masked_category() -> None:
    """TorchRL documents ``neg_inf`` as the log-prob of a masked index but fills the *logits*
    with it (masked categories keep probability e**neg_inf, log-prob -101.5 for -100 here);
    tdrl gives them probability 0 and the documented log-prob."""
    d = MaskedCategorical(logits=_make("MaskedCategorical").logits, mask=MASK, neg_inf=-100.0)
    assert d.log_prob(torch.tensor([1, 0])).tolist() == [-100.0, -100.0]
    assert not bool((MASK.logical_not() & (d.probs > 0)).any())


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 8), seed=st.integers(0, 2**16))
def test_one_hot_rsample_is_opt_in_and_sample_is_exact(n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, n, generator=g, requires_grad=True)
    for d in (OneHotCategorical(logits=logits),
              MaskedOneHotCategorical(logits=logits, mask=torch.ones(3, n, dtype=torch.bool))):
        assert d.has_rsample is False
        x = d.sample()
        assert x.dtype == torch.int64 and not x.requires_grad
        assert bool((x.sum(-1) == 1).all()) and bool(((x == 0) | (x == 1)).all())
        r = d.rsample()  # asked for explicitly: straight-through, with a gradient
        assert r.dtype == logits.dtype and r.requires_grad
        torch.testing.assert_close(r.detach().sum(-1), torch.ones(3))


# ---- what ProbabilisticActor writes -----------------------------------------------------
MODES = [ExplorationType.RANDOM, ExplorationType.DETERMINISTIC, ExplorationType.MODE,
         ExplorationType.MEAN]
BA = 5  # actor batch


def _cont_actor(cls: type) -> ProbabilisticActor:
    net = TensorDictModule(torch.nn.Sequential(torch.nn.Linear(3, 4), NormalParamExtractor()),
                           ["obs"], ["loc", "scale"])
    return ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=cls,
                              return_log_prob=True)


def _delta_actor(cls: type) -> ProbabilisticActor:
    net = TensorDictModule(torch.nn.Linear(3, 2), ["obs"], ["param"])
    return ProbabilisticActor(net, in_keys=["param"], distribution_class=cls, return_log_prob=True)


# TorchRL's actor writes, per distribution and mode: (action dtype, shape, carries a gradient)
# or "raises"; its log-prob key is "action_log_prob" (tensordict's naming), tdrl's
# "sample_log_prob" (the seed page's, listed in the README).
_C = (F32, (BA, 2), True)
ACTOR_TORCHRL: dict[str, dict[str, Any]] = {
    "TanhNormal": {"RANDOM": _C, "DETERMINISTIC": _C, "MODE": RAISES, "MEAN": _C},
    "IndependentNormal": dict.fromkeys(["RANDOM", "DETERMINISTIC", "MODE", "MEAN"], _C),
    "TruncatedNormal": dict.fromkeys(["RANDOM", "DETERMINISTIC", "MODE", "MEAN"], _C),
    "Delta": dict.fromkeys(["RANDOM", "DETERMINISTIC", "MODE", "MEAN"], _C),
    "TanhDelta": {"RANDOM": (F32, (BA, 2), False), "DETERMINISTIC": _C, "MODE": _C,
                  "MEAN": (F32, (BA, 2), False)},
}
ACTOR_DELIBERATE = {
    ("TanhNormal", "MODE"): ((F32, (BA, 2), False), "`TanhNormal.mode` raises"),
    ("TanhDelta", "RANDOM"): (_C, _DELTA_RSAMPLE),
    ("TanhDelta", "MEAN"): (_C, "`TanhDelta.mean` raises"),
}
_ACTORS = {"TanhNormal": lambda: _cont_actor(TanhNormal),
           "IndependentNormal": lambda: _cont_actor(IndependentNormal),
           "TruncatedNormal": lambda: _cont_actor(TruncatedNormal),
           "Delta": lambda: _delta_actor(Delta), "TanhDelta": lambda: _delta_actor(TanhDelta)}


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("name", list(ACTOR_TORCHRL))
def test_continuous_actor_writes_per_mode(name: str, mode: ExplorationType) -> None:
    actor = _ACTORS[name]()
    td = TensorDict(obs=torch.randn(BA, 3), batch_size=[BA])
    try:
        with set_exploration_type(mode):
            actor(td)
        got = (str(td["action"].dtype), tuple(td["action"].shape), td["action"].requires_grad)
    except Exception:  # noqa: BLE001
        got = RAISES
    key = (name, mode.name)
    expected = ACTOR_DELIBERATE[key][0] if key in ACTOR_DELIBERATE else ACTOR_TORCHRL[name][mode.name]
    assert got == expected
    assert set(td.keys()) == {"obs", "loc", "scale", "action", "sample_log_prob"} - (
        {"loc", "scale"} if "Delta" in name else set()) | ({"param"} if "Delta" in name else set())
    assert td["sample_log_prob"].shape == (BA,)


def test_actor_deliberate_rows_are_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for _, row in ACTOR_DELIBERATE.values():
        assert row in readme
    assert "`sample_log_prob`" in readme and "`action_log_prob`" in readme


def _discrete_cases() -> dict[str, tuple[type, Any, bool]]:
    """name -> (distribution class, spec, reads a mask)."""
    row = MASK[0]
    return {
        "OneHotCategorical/OneHot-int64": (OneHotCategorical, OneHot(N, dtype=torch.int64), False),
        "OneHotCategorical/OneHot-bool": (OneHotCategorical, OneHot(N), False),
        "torch.Categorical/Categorical": (D.Categorical, Categorical(N), False),
        "torch.Categorical/Categorical-int32": (D.Categorical, Categorical(N, dtype=torch.int32),
                                                False),
        "MaskedCategorical/Categorical-masked": (MaskedCategorical, Categorical(N, mask=row), True),
        "MaskedOneHotCategorical/OneHot-masked": (MaskedOneHotCategorical,
                                                  OneHot(N, dtype=torch.int64, mask=row), True),
        "MaskedOneHotCategorical/OneHot-bool-masked": (MaskedOneHotCategorical,
                                                       OneHot(N, mask=row), True),
    }


@pytest.mark.parametrize("return_log_prob", [False, True])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("case", list(_discrete_cases()))
def test_discrete_actor_actions_are_in_the_spec(case: str, mode: ExplorationType,
                                                return_log_prob: bool) -> None:
    cls, spec, masked = _discrete_cases()[case]
    net = TensorDictModule(torch.nn.Linear(3, N), ["obs"], ["logits"])
    in_keys = {"logits": "logits", "mask": "mask"} if masked else ["logits"]
    actor = ProbabilisticActor(net, in_keys=in_keys, distribution_class=cls, spec=spec,
                               return_log_prob=return_log_prob,
                               default_interaction_type=ExplorationType.RANDOM)
    for _ in range(5):
        td = TensorDict(obs=torch.randn(BA, 3) * 3, mask=MASK[0].expand(BA, N), batch_size=[BA])
        with set_exploration_type(mode):
            actor(td)
        action = td["action"]
        assert action.dtype == spec.dtype, (case, mode)
        assert spec.is_in(action), (case, mode, action)
        assert not action.requires_grad
        if return_log_prob:
            lp = td["sample_log_prob"]
            assert lp.shape == (BA,) and bool(lp.isfinite().all())
            torch.testing.assert_close(lp, actor.log_prob(td))


# ---- the discrete-SAC construction of TorchRL's example ---------------------------------
def _discrete_sac_actor(n: int = 3) -> ProbabilisticActor:
    net = MLP(in_features=4, out_features=n, num_cells=[16, 16])
    module = SafeModule(net, in_keys=["observation"], out_keys=["logits"])
    return ProbabilisticActor(
        spec=Composite(action=OneHot(n, dtype=torch.int64)), module=module, in_keys=["logits"],
        out_keys=["action"], distribution_class=OneHotCategorical, distribution_kwargs={},
        default_interaction_type=ExplorationType.RANDOM, return_log_prob=False)


@pytest.mark.parametrize("mode", [None, *MODES], ids=lambda m: "default" if m is None else m.name)
def test_discrete_sac_actor_emits_int64_one_hot(mode: ExplorationType | None) -> None:
    actor = _discrete_sac_actor()
    spec = actor.spec["action"]
    td = TensorDict(observation=torch.randn(64, 4), batch_size=[64])
    if mode is None:
        actor(td)  # the default interaction type, RANDOM
    else:
        with set_exploration_type(mode):
            actor(td)
    action = td["action"]
    assert action.dtype == torch.int64 and action.shape == (64, 3)
    assert spec.is_in(action)
    assert bool(((action == 0) | (action == 1)).all()) and bool((action.sum(-1) == 1).all())
    assert set(td.keys()) == {"observation", "logits", "action"}


def test_discrete_sac_actor_random_mode_samples_every_action() -> None:
    """RANDOM samples (it is not the mode): with near-uniform logits every action appears."""
    actor = _discrete_sac_actor()
    with torch.no_grad():
        for p in actor.parameters():
            p.zero_()
    td = TensorDict(observation=torch.randn(600, 4), batch_size=[600])
    with set_exploration_type(ExplorationType.RANDOM):
        actor(td)
    counts = td["action"].sum(0)
    assert bool((counts > 100).all()), counts


def test_readme_has_no_stale_rsample_claim() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert not re.search(r"OneHotCategorical[^|\n]*has_rsample[^|\n]*True", readme)
