"""tdrl.export: exported policies (torch graph, .pt2, .onnx on onnxruntime) match the eager module.

Every module kind is exported once (both formats) and checked on 1,000 random
observations at batch sizes 1 and 1,000: discrete actions identical,
continuous actions within 1e-5, values and log-probs close.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl.data import Binary, Bounded, Categorical, MultiCategorical, MultiOneHot, OneHot
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.export import ExportError, MissingExtraError, export_policy, load_policy, sidecar_path
from tdrl.modules import (
    ActorValueOperator,
    Delta,
    NormalParamExtractor,
    OneHotCategorical,
    ProbabilisticActor,
    QValueActor,
    SafeModule,
    TanhNormal,
    TruncatedNormal,
    ValueOperator,
)

OBS = 5
N = 1000


def _gaussian_actor(dist, act_dim=3, **kwargs):
    net = TensorDictModule(
        nn.Sequential(nn.Linear(OBS, 16), nn.Tanh(), nn.Linear(16, 2 * act_dim),
                      NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    return ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=dist,
                              return_log_prob=True, **kwargs)


def _logits_actor(dist, n=4, **kwargs):
    net = TensorDictModule(nn.Linear(OBS, n), in_keys=["observation"], out_keys=["logits"])
    return ProbabilisticActor(net, in_keys=["logits"], distribution_class=dist,
                              return_log_prob=True, **kwargs)


def _operator(head_dist, spec):
    trunk = SafeModule(nn.Sequential(nn.Linear(OBS, 16), nn.Tanh()), in_keys=["observation"],
                       out_keys=["hidden"])
    if head_dist is TanhNormal:
        low, high = torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 3.0])
        net = SafeModule(nn.Sequential(nn.Linear(16, 4), NormalParamExtractor()),
                         in_keys=["hidden"], out_keys=["loc", "scale"])
        policy = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal,
                                    distribution_kwargs={"low": low, "high": high},
                                    return_log_prob=True, spec=Bounded(low, high, shape=(2,)))
    else:
        net = SafeModule(nn.Linear(16, 3), in_keys=["hidden"], out_keys=["logits"])
        policy = ProbabilisticActor(net, in_keys=["logits"], distribution_class=head_dist,
                                    return_log_prob=True, spec=spec)
    value = ValueOperator(nn.Linear(16, 1), in_keys=["hidden"])
    return ActorValueOperator(trunk, policy, value)


def _q(spec, n, mask=False):
    return QValueActor(nn.Linear(OBS, n), spec=spec, action_mask_key="mask" if mask else None)


# name -> (builder, export kwargs, action size for the mask or None, discrete action)
KINDS = {
    "tanh_normal": (lambda: _gaussian_actor(TanhNormal, distribution_kwargs={
        "low": torch.tensor([-2.0, -1.0, 0.0]), "high": torch.tensor([2.0, 1.0, 5.0])}),
        {"log_prob": True}, None, False),
    "truncated_normal": (lambda: _gaussian_actor(TruncatedNormal, distribution_kwargs={
        "low": -1.0, "high": 1.0}), {"log_prob": True}, None, False),
    "delta": (lambda: ProbabilisticActor(
        TensorDictModule(nn.Linear(OBS, 2), in_keys=["observation"], out_keys=["param"]),
        in_keys=["param"], distribution_class=Delta), {}, None, False),
    # torch's Categorical with its default argument validation
    "categorical": (lambda: _logits_actor(torch.distributions.Categorical, spec=Categorical(4)),
                    {"log_prob": True}, None, True),
    "one_hot_categorical": (lambda: _logits_actor(OneHotCategorical, spec=OneHot(4)),
                            {"log_prob": True}, None, True),
    "q_one_hot_mask": (lambda: _q(OneHot(4), 4, mask=True), {"value": True}, [4], True),
    "q_categorical": (lambda: _q(Categorical(4), 4), {"value": True}, None, True),
    "q_categorical_mask": (lambda: _q(Categorical(4), 4, mask=True), {}, [4], True),
    "q_mult_one_hot_mask": (lambda: _q(MultiOneHot([2, 3]), 5, mask=True), {}, [2, 3], True),
    "q_multi_categorical": (lambda: _q(MultiCategorical([2, 3]), 5), {"value": True}, None, True),
    "q_binary_mask": (lambda: _q(Binary(3), 3, mask=True), {}, None, True),
    "operator_policy": (lambda: _operator(TanhNormal, None).get_policy_operator(),
                        {"log_prob": True}, None, False),
    "operator_whole": (lambda: _operator(OneHotCategorical, OneHot(3)),
                       {"value": True, "log_prob": True}, None, True),
}


def _mask(blocks, batch, gen, binary_n=None):
    if binary_n is not None:
        return torch.rand(batch, binary_n, generator=gen) > 0.5
    parts = []
    for n in blocks:
        m = torch.rand(batch, n, generator=gen) > 0.5
        m[torch.arange(batch), torch.randint(n, (batch,), generator=gen)] = True  # one allowed
        parts.append(m)
    return torch.cat(parts, -1)


def _inputs(name, batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, OBS, generator=gen)
    blocks = KINDS[name][2]
    if name == "q_binary_mask":
        return [obs, _mask(None, batch, gen, binary_n=3)]
    return [obs] if blocks is None else [obs, _mask(blocks, batch, gen)]


def _eager(policy, exported, inputs):
    """The eager module's outputs, read from its TensorDict under DETERMINISTIC."""
    td = TensorDict(dict(zip(exported.signature.inputs, inputs)), batch_size=[len(inputs[0])])
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        td = policy(td)
    return [td.get(k) for k in exported.signature.outputs]


@pytest.fixture(scope="module", params=list(KINDS))
def exported_kind(request, tmp_path_factory):
    torch.manual_seed(0)
    name = request.param
    build, kwargs, _, discrete = KINDS[name]
    policy = build().eval()
    exported = export_policy(policy, dict(zip(policy.in_keys, _inputs(name, 3, seed=1))), **kwargs)
    out = tmp_path_factory.mktemp(name)
    files = {fmt: exported.save(out / f"policy.{fmt}") for fmt in ("pt2", "onnx")}
    return name, policy, exported, files, discrete


def _assert_parity(name, got, expected, discrete):
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        g = torch.as_tensor(np.asarray(g))
        assert g.shape == e.shape, (name, i)
        assert g.dtype == e.dtype, (name, i, g.dtype, e.dtype)
        if i == 0 and discrete:
            assert torch.equal(g, e), f"{name}: discrete actions differ"
        elif i == 0:
            torch.testing.assert_close(g, e, rtol=0, atol=1e-5, msg=f"{name}: action")
        else:  # value / log-prob: float32 ops in another order
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4, msg=f"{name}: output {i}")


@pytest.mark.parametrize("batch", [1, N])
def test_parity_every_kind_and_runtime(exported_kind, batch):
    name, policy, exported, files, discrete = exported_kind
    inputs = _inputs(name, batch, seed=batch)
    expected = _eager(policy, exported, inputs)
    runs = {
        "graph": exported(*inputs),
        "pt2": load_policy(files["pt2"])(*[x.numpy() for x in inputs]),
        "onnxruntime": load_policy(files["onnx"])(*[x.numpy() for x in inputs]),
    }
    for runtime, got in runs.items():
        got = got if isinstance(got, tuple) else (got,)
        _assert_parity(f"{name}/{runtime}/batch {batch}", got, expected, discrete)


def test_sidecar_records_shapes_space_names_and_version(exported_kind):
    import tdrl

    name, policy, exported, files, _ = exported_kind
    for fmt, path in files.items():
        meta = json.loads(sidecar_path(path).read_text())
        assert meta["format"] == fmt and meta["file"] == path.name
        assert meta["tdrl_version"] == tdrl.__version__
        assert [i["name"] for i in meta["inputs"]] == exported.input_names
        assert meta["inputs"][0] == {"name": "observation", "key": "observation",
                                     "shape": [OBS], "dtype": "float32"}
        assert [o["name"] for o in meta["outputs"]] == exported.output_names
        assert meta["exploration_type"] == "DETERMINISTIC"
        assert ("onnx_opset" in meta) == (fmt == "onnx")
    if name == "operator_policy":
        assert meta["action_space"]["low"] == [-2.0, -1.0]
        assert meta["action_space"]["high"] == [2.0, 3.0]
        assert meta["action_space"]["shape"] == [2]
    if name == "q_categorical":
        assert meta["action_space"] == {"spec": "Categorical", "shape": [], "dtype": "int64",
                                        "n": 4}


def test_output_order_and_names():
    op = _operator(OneHotCategorical, OneHot(3))
    exported = export_policy(op, torch.zeros(2, OBS), value=True, log_prob=True)
    assert exported.output_names == ["action", "state_value", "sample_log_prob"]
    action, value, logp = exported(torch.randn(6, OBS))
    assert action.shape == (6, 3) and value.shape == (6, 1) and logp.shape == (6,)
    q = _q(Categorical(4), 4, mask=True)
    assert export_policy(q, {"observation": torch.zeros(1, OBS),
                             "mask": torch.ones(1, 4, dtype=torch.bool)}).input_names == [
        "observation", "mask"]


def test_nested_keys_become_dotted_names():
    net = TensorDictModule(nn.Sequential(nn.Linear(OBS, 4), NormalParamExtractor()),
                           in_keys=[("agent", "obs")], out_keys=["loc", "scale"])
    actor = ProbabilisticActor(net, in_keys=["loc", "scale"], out_keys=[("agent", "action")],
                               distribution_class=TanhNormal)
    exported = export_policy(actor, {("agent", "obs"): torch.zeros(1, OBS)})
    assert exported.input_names == ["agent.obs"] and exported.output_names == ["agent.action"]
    obs = torch.randn(4, OBS)
    expected = _eager(actor, exported, [obs])[0]
    torch.testing.assert_close(exported(obs), expected, rtol=0, atol=1e-6)


def test_export_restores_training_mode_and_validation_default():
    actor = _logits_actor(torch.distributions.Categorical)
    actor.train()
    before = torch.distributions.Distribution._validate_args
    export_policy(actor, torch.zeros(1, OBS))
    assert all(m.training for m in actor.modules())
    assert torch.distributions.Distribution._validate_args == before


# ----------------------------------------------------------------------------- errors
def test_custom_callable_with_data_dependent_branch_is_named():
    def flip(x):
        return x if x.sum() > 0 else -x

    actor = ProbabilisticActor(SafeModule(flip, in_keys=["observation"], out_keys=["param"]),
                               in_keys=["param"], distribution_class=Delta)
    with pytest.raises(ExportError, match=r"part 'module\.0' \(SafeModule wrapping flip, in flip "
                                          r"at .*test_export\.py.*\) fails to trace: its output "
                                          r"depends on tensor values"):
        export_policy(actor, torch.ones(1, OBS))


def test_distribution_without_mode_is_named():
    def tanh_gauss(loc, scale):
        return torch.distributions.TransformedDistribution(
            torch.distributions.Normal(loc, scale), [torch.distributions.transforms.TanhTransform()]
        )

    actor = _gaussian_actor(tanh_gauss)
    with pytest.raises(ExportError, match=r"part 'module\.1' \(SafeProbabilisticModule with "
                                          r"distribution tanh_gauss\).*has no deterministic value"):
        export_policy(actor, torch.zeros(1, OBS))


def test_untraceable_distribution_path_is_named():
    # TanhNormal's MODE runs Newton's method with a convergence test on tensor values
    with pytest.raises(ExportError, match=r"'module\.1' \(SafeProbabilisticModule with "
                                          r"distribution TanhNormal\) fails to trace"):
        export_policy(_gaussian_actor(TanhNormal), torch.zeros(1, OBS),
                      exploration_type=ExplorationType.MODE)


def test_bad_requests_and_examples():
    q = _q(Categorical(4), 4, mask=True)
    with pytest.raises(ExportError, match=r"the example has no \['mask'\]; the policy reads "
                                          r"\['observation', 'mask'\]"):
        export_policy(q, {"observation": torch.zeros(1, OBS)})
    with pytest.raises(ExportError, match="pass the example as a dict"):
        export_policy(q, torch.zeros(1, OBS))
    with pytest.raises(ExportError, match="writes no log-probability"):
        export_policy(q, {"observation": torch.zeros(1, OBS),
                          "mask": torch.ones(1, 4, dtype=torch.bool)}, log_prob=True)
    with pytest.raises(ExportError, match="leading batch dimension"):
        export_policy(_q(Categorical(4), 4), torch.tensor(1.0))
    with pytest.raises(ExportError, match=r"out_keys \['nope'\] are not written"):
        export_policy(_q(Categorical(4), 4), torch.zeros(1, OBS), out_keys=["nope"])


def test_save_errors_leave_nothing_written(tmp_path, monkeypatch):
    exported = export_policy(_q(Categorical(4), 4), torch.zeros(1, OBS))
    with pytest.raises(ValueError, match="unknown export format 'tflite'.*onnx, pt2"):
        exported.save(tmp_path / "policy.tflite")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r'onnxscript.*pip install "tdrl\[export\]"'):
        exported.save(tmp_path / "policy.onnx")
    assert list(tmp_path.iterdir()) == []


def test_import_tdrl_does_not_import_onnx():
    code = ("import sys, tdrl, tdrl.export, tdrl.cli; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnxscript') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- float64 compute
@pytest.mark.parametrize("name", ["tanh_normal", "operator_policy"])
def test_float64_compute_rounds_identically_in_every_runtime(name, tmp_path):
    """dtype=float64: float32 in / out, the policy untouched, every runtime bit-identical."""
    torch.manual_seed(0)
    policy = KINDS[name][0]().eval()
    exported = export_policy(policy, torch.zeros(1, OBS), dtype=torch.float64)
    assert all(p.dtype == torch.float32 for p in policy.parameters())  # a copy was cast
    files = {fmt: exported.save(tmp_path / f"policy.{fmt}") for fmt in ("pt2", "onnx")}
    meta = json.loads(sidecar_path(files["onnx"]).read_text())
    assert meta["compute_dtype"] == "float64"
    assert meta["inputs"][0]["dtype"] == meta["outputs"][0]["dtype"] == "float32"
    policy64 = KINDS[name][0]().eval()
    policy64.load_state_dict(policy.state_dict())
    policy64.double()
    for batch in (1, N):
        obs = _inputs(name, batch, seed=batch)[0]
        (eager32,) = _eager(policy, exported, [obs])
        (eager64,) = _eager(policy64, exported, [obs.double()])
        expected = eager64.float()
        for runtime, got in {
            "graph": exported(obs),
            "pt2": load_policy(files["pt2"])(obs.numpy()),
            "onnxruntime": load_policy(files["onnx"])(obs.numpy()),
        }.items():
            got = torch.as_tensor(np.asarray(got))
            assert got.dtype == torch.float32, runtime
            assert torch.equal(got, expected), f"{name}/{runtime}/batch {batch}"
            torch.testing.assert_close(got, eager32, rtol=0, atol=1e-5)


def test_float64_compute_needs_a_floating_dtype():
    with pytest.raises(ValueError, match="dtype must be a floating dtype, got torch.int64"):
        export_policy(_q(Categorical(4), 4), torch.zeros(1, OBS), dtype=torch.int64)
    exported = export_policy(_q(Categorical(4), 4), torch.zeros(1, OBS))
    assert exported.metadata["compute_dtype"] == "float32"
