"""Trace a tdrl policy's deterministic path into a TensorDict-free ``torch.export`` program.

The policy runs inside a thin wrapper that builds a TensorDict from positional
tensors and returns the selected entries; ``torch.export`` traces it with a
dynamic batch dimension, and computations that depend on the weights and
buffers only (bounds, ``exp(log_std)``...) are folded into constants.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import distributions as D
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules.tensordict_module.core import key_str, normalize_keys
from tdrl.modules.tensordict_module.probabilistic import SafeProbabilisticModule
from tdrl.modules.tensordict_module.qvalue import QValueModule

__all__ = ["ExportError", "PolicySignature", "resolve_signature", "trace_policy"]


class ExportError(RuntimeError):
    """A policy (or one of its parts) cannot be exported; the message names the part."""


class PolicySignature:
    """The positional inputs and outputs of an exported policy, in order.

    ``inputs`` are the policy's external in_keys (observation first, then e.g. the
    action mask); ``outputs`` are the action, then the value, then the log-prob
    (those requested). ``names`` turn nested keys into dotted names.
    """

    def __init__(self, inputs: Sequence[NestedKey], outputs: Sequence[NestedKey]) -> None:
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    @property
    def input_names(self) -> list[str]:
        return [key_name(k) for k in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [key_name(k) for k in self.outputs]


def key_name(key: NestedKey) -> str:
    """``"observation" -> "observation"``, ``("agent", "obs") -> "agent.obs"``."""
    return key if isinstance(key, str) else ".".join(key)


def _heads(policy: nn.Module) -> list[nn.Module]:
    return [m for m in policy.modules() if isinstance(m, (SafeProbabilisticModule, QValueModule))]


def _value_key(policy: nn.Module, head: nn.Module | None) -> NestedKey:
    from tdrl.modules.tensordict_module.actors import ValueOperator

    values = [m for m in policy.modules() if isinstance(m, ValueOperator)]
    if len(values) == 1:
        return values[0].out_keys[0]
    if isinstance(head, QValueModule) and len(head.out_keys) > 2:  # the chosen action value
        return head.out_keys[2]
    raise ExportError(
        f"value=True: {type(policy).__name__} has "
        f"{'no' if not values else len(values)} ValueOperator and no chosen action value; "
        f"pass out_keys=[...] choosing among its out_keys {policy.out_keys}"
    )


def resolve_signature(
    policy: nn.Module,
    *,
    value: bool = False,
    log_prob: bool = False,
    in_keys: Sequence[NestedKey] | None = None,
    out_keys: Sequence[NestedKey] | None = None,
) -> PolicySignature:
    """The inputs (policy in_keys) and outputs (action[, value][, log-prob]) to export.

    Examples:
        >>> import torch
        >>> from tdrl.data import Categorical
        >>> from tdrl.modules import QValueActor
        >>> q = QValueActor(torch.nn.Linear(4, 3), spec=Categorical(3), action_mask_key="mask")
        >>> sig = resolve_signature(q, value=True)
        >>> sig.input_names, sig.output_names
        (['observation', 'mask'], ['action', 'chosen_action_value'])
    """
    inputs = normalize_keys(in_keys if in_keys is not None else policy.in_keys, "in_keys")
    if out_keys is not None:
        outputs = normalize_keys(out_keys, "out_keys")
        missing = [k for k in outputs if k not in policy.out_keys]
        if missing:
            raise ExportError(
                f"out_keys {missing} are not written by {type(policy).__name__}; "
                f"its out_keys: {policy.out_keys}"
            )
        return PolicySignature(inputs, outputs)
    heads = _heads(policy)
    head = heads[-1] if heads else None
    if head is not None:
        action = head.out_keys[0]
    elif "action" in policy.out_keys:
        action = "action"
    else:
        raise ExportError(
            f"{type(policy).__name__} has no action head (ProbabilisticActor, QValueModule) and "
            f"writes no 'action'; pass out_keys=[...] choosing among {policy.out_keys}"
        )
    outputs: list[NestedKey] = [action]
    if value:
        outputs.append(_value_key(policy, head))
    if log_prob:
        if not (isinstance(head, SafeProbabilisticModule) and head.return_log_prob):
            raise ExportError(
                f"log_prob=True: {type(policy).__name__} writes no log-probability "
                "(build its ProbabilisticActor with return_log_prob=True)"
            )
        outputs.append(head.log_prob_key)
    return PolicySignature(inputs, outputs)


def example_inputs(signature: PolicySignature, example: Any) -> tuple[torch.Tensor, ...]:
    """The example tensors in signature order, from a tensor or a mapping of keys."""
    if isinstance(example, torch.Tensor):
        if len(signature.inputs) != 1:
            raise ExportError(
                f"the policy reads {signature.inputs}: pass the example as a dict or "
                "TensorDict with one batch per key"
            )
        tensors = [example]
    elif isinstance(example, (Mapping, TensorDictBase)):
        td = example if isinstance(example, TensorDictBase) else TensorDict(dict(example))
        present = list(td.keys(include_nested=True, leaves_only=True))
        missing = [k for k in signature.inputs if k not in present]
        if missing:
            raise ExportError(f"the example has no {missing}; the policy reads "
                              f"{signature.inputs}, the example holds {present}")
        tensors = [td.get(k) for k in signature.inputs]
    else:
        raise TypeError(
            f"example_observation must be a tensor, a dict or a TensorDict, got "
            f"{type(example).__name__}"
        )
    for key, t in zip(signature.inputs, tensors):
        if not isinstance(t, torch.Tensor) or t.ndim < 1:
            raise ExportError(
                f"example {key_str(key)} must be a batch (a tensor with a leading batch "
                f"dimension), got {getattr(t, 'shape', type(t).__name__)}"
            )
        if t.shape[0] != tensors[0].shape[0]:
            raise ExportError(
                f"example batch sizes differ: {key_str(signature.inputs[0])} has "
                f"{tensors[0].shape[0]}, {key_str(key)} has {t.shape[0]}"
            )
    # trace at batch 2 so that the batch dimension is not specialized to 1
    return tuple(t[:1].expand(2, *t.shape[1:]).clone() for t in tensors)


class TensorPolicy(nn.Module):
    """``forward(*inputs) -> action[, value][, log_prob]``: the policy behind plain tensors.

    Builds the TensorDict from the positional inputs, runs ``policy`` under
    ``exploration_type`` and returns the signature's outputs (one tensor, or a
    tuple). This is the eager module that :func:`trace_policy` exports. With
    ``dtype`` (the policy's own floating dtype, e.g. ``torch.float64``), floating
    inputs are cast to it on entry and floating outputs back to the first
    floating input's dtype on exit.

    Examples:
        >>> import torch
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules import QValueActor
        >>> q = QValueActor(torch.nn.Linear(4, 3), spec=OneHot(3))
        >>> TensorPolicy(q, resolve_signature(q))(torch.zeros(5, 4)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        policy: nn.Module,
        signature: PolicySignature,
        exploration_type: ExplorationType = ExplorationType.DETERMINISTIC,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.signature = signature
        self.exploration_type = ExplorationType(exploration_type)
        self.dtype = dtype

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        io_dtype = None
        if self.dtype is not None:
            io_dtype = next((x.dtype for x in inputs if x.is_floating_point()), None)
            inputs = _cast_floating(inputs, self.dtype)
        td = TensorDict(dict(zip(self.signature.inputs, inputs)), batch_size=inputs[0].shape[:1])
        with set_exploration_type(self.exploration_type):
            td = self.policy(td)
        outs = tuple(td.get(k) for k in self.signature.outputs)
        if io_dtype is not None:
            outs = _cast_floating(outs, io_dtype)
        return outs[0] if len(outs) == 1 else outs


def _cast_floating(tensors: Sequence[torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in tensors)


# ----------------------------------------------------------------------------- tracing
@contextlib.contextmanager
def _tracing_mode(policy: nn.Module) -> Iterator[None]:
    """Eval mode, no grad, and no ``torch.distributions`` argument validation while tracing.

    Validation branches on tensor values, which a graph cannot do; the exported
    program skips it (tdrl's own modules skip their value checks by themselves
    while ``torch.export`` traces: the Q-value modules' NaN and mask checks).
    """
    training = [(m, m.training) for m in policy.modules()]
    # torch has no public getter for the default; it is __debug__ unless changed
    validate = getattr(D.Distribution, "_validate_args", __debug__)
    policy.eval()
    D.Distribution.set_default_validate_args(False)
    try:
        with torch.no_grad():
            yield
    finally:
        D.Distribution.set_default_validate_args(validate)
        for m, mode in training:
            m.training = mode


def _part_of(err: BaseException, policy: nn.Module) -> tuple[str, nn.Module, str] | None:
    """The innermost part of ``policy`` (name, module) running when ``err`` was raised,
    and the innermost user callable (``name at file:line``) below it."""
    names = {id(m): n for n, m in policy.named_modules()}
    found = None
    callable_at = ""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            owner = frame.f_locals.get("self")
            if id(owner) not in names:  # containers run leaves through steps with an owner
                owner = getattr(owner, "owner", None)
            if isinstance(owner, nn.Module) and id(owner) in names:
                found = (names[id(owner)], owner)
                callable_at = ""
            elif not re.search(r"[/\\](torch|tensordict|tdrl)[/\\]", frame.f_code.co_filename):
                code = frame.f_code
                callable_at = f"{code.co_name} at {code.co_filename}:{tb.tb_lineno}"
            tb = tb.tb_next
        e = e.__cause__ or e.__context__
    if found is None:
        return None
    return found[0], found[1], callable_at


def _describe(name: str, part: nn.Module, callable_at: str) -> str:
    label = f"{name or '<root>'!r} ({type(part).__name__}"
    dist = getattr(part, "distribution_class", None)
    if dist is not None:
        label += f" with distribution {getattr(dist, '__name__', repr(dist))}"
    inner = getattr(part, "module", None)
    if inner is not None and not isinstance(inner, nn.ModuleList):
        label += f" wrapping {getattr(inner, '__name__', type(inner).__name__)}"
    if callable_at:
        label += f", in {callable_at}"
    return label + ")"


def _reason(err: BaseException, part: nn.Module | None) -> str:
    if isinstance(err, NotImplementedError) and isinstance(part, SafeProbabilisticModule):
        return ("the distribution has no deterministic value (no deterministic_sample, mode or "
                "mean) to export")
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "data-dependent" in text or "GuardOnDataDependent" in type(err).__name__:
        return ("its output depends on tensor values through Python control flow "
                f"(an if/bool()/.item() on a tensor): {text}")
    return f"{type(err).__name__}: {text}"


def _export_error(err: BaseException, policy: nn.Module, stage: str) -> ExportError:
    located = _part_of(err, policy)
    if located is None:
        return ExportError(
            f"cannot export {type(policy).__name__} ({stage}): {_reason(err, None)}"
        )
    name, part, callable_at = located
    return ExportError(
        f"cannot export {type(policy).__name__}: part {_describe(name, part, callable_at)} "
        f"fails {stage}: {_reason(err, part)}"
    )


def trace_policy(
    wrapper: TensorPolicy, inputs: tuple[torch.Tensor, ...]
) -> torch.export.ExportedProgram:
    """``torch.export`` the wrapper with a dynamic batch dimension, constants folded.

    The policy first runs eagerly on ``inputs`` (errors there name the failing
    part), then is traced; a part that cannot be traced raises :class:`ExportError`.
    """
    policy = wrapper.policy
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} for _ in inputs)
    with _tracing_mode(policy), warnings.catch_warnings():
        # nn.LSTM / nn.GRU re-point their _flat_weights list at the traced parameters: torch
        # warns that plain attributes were assigned; the weights are parameters, folded below
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights")
        try:
            wrapper(*inputs)
        except Exception as err:
            raise _export_error(err, policy, "on the example observation") from err
        try:
            program = torch.export.export(
                wrapper, inputs, dynamic_shapes=(shapes,), strict=False  # *inputs
            )
        except Exception as err:
            raise _export_error(err, policy, "to trace") from err
    folded = fold_constants(program.module())
    return torch.export.export(folded, inputs, dynamic_shapes=shapes, strict=False)


def fold_constants(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Replaces the nodes that depend only on weights and buffers by precomputed buffers.

    Random ops are never folded. Returns ``gm``, modified in place.
    """
    graph = gm.graph
    values: dict[torch.fx.Node, Any] = {}
    for node in graph.nodes:
        if node.op == "get_attr":
            obj: Any = gm
            for part in node.target.split("."):
                obj = getattr(obj, part)
            values[node] = obj
        elif node.op == "call_function" and _foldable(node, values):
            args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), lambda n: values[n])
            values[node] = node.target(*args, **kwargs)
    count = 0
    for node, value in values.items():
        if node.op != "call_function" or not isinstance(value, torch.Tensor):
            continue
        if all(user in values for user in node.users):
            continue
        name = f"_folded_{count}"
        count += 1
        gm.register_buffer(name, value.detach().clone())
        with graph.inserting_before(node):
            const = graph.get_attr(name)
        node.replace_all_uses_with(const)
    for node in reversed(list(values)):  # metadata asserts on constants (return None)
        if node.op == "call_function" and values[node] is None and not node.users:
            graph.erase_node(node)
    graph.eliminate_dead_code()
    gm.recompile()
    return gm


def _foldable(node: torch.fx.Node, values: dict[torch.fx.Node, Any]) -> bool:
    target = node.target
    tags = getattr(target, "tags", None)  # aten/prims operator overloads
    if tags is not None:
        if torch.Tag.nondeterministic_seeded in tags:
            return False
    elif getattr(target, "__module__", None) != "_operator":  # getitem on chunk outputs
        return False
    return all(n in values for n in node.all_input_nodes)
