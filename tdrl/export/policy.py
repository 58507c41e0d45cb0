"""``export_policy``: a tdrl policy as a plain tensor-in / tensor-out module, and its files."""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tensordict.utils import NestedKey
from torch import nn

import tdrl
from tdrl.envs.utils import ExplorationType
from tdrl.export.onnx import OPSET, write_onnx
from tdrl.export.trace import (
    ExportError,
    PolicySignature,
    TensorPolicy,
    example_inputs,
    resolve_signature,
    trace_policy,
)

__all__ = [
    "FORMATS",
    "ExportedPolicy",
    "ProgramRunner",
    "check_target",
    "export_policy",
    "sidecar_path",
]

#: file formats and their suffixes
FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar written next to an exported file: ``policy.onnx -> policy.onnx.json``.

    Examples:
        >>> sidecar_path("out/policy.onnx").as_posix()
        'out/policy.onnx.json'
    """
    path = Path(path)
    return path.with_name(path.name + ".json")


def check_target(path: str | Path, fmt: str) -> Path:
    """Check that ``path`` can take an exported ``fmt`` file and its sidecar; writes nothing.

    Raises ``ValueError`` for an unknown format, and
    :class:`~tdrl.export.trace.ExportError` naming the path when the suffix is not the format's, the file or its sidecar
    is a directory, or a parent is not a directory.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> check_target(d / "new" / "policy.onnx", "onnx").name
        'policy.onnx'
        >>> check_target(d, "pt2")
        Traceback (most recent call last):
        ...
        tdrl.export.trace.ExportError: cannot write ...: the export path must end in .pt2 for format pt2
        >>> _ = (d / "file").write_text("x")
        >>> check_target(d / "file" / "policy.pt2", "pt2")
        Traceback (most recent call last):
        ...
        tdrl.export.trace.ExportError: cannot write .../file/policy.pt2: .../file is not a directory
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown export format {fmt!r} (from {path.name!r}); choose one of {', '.join(FORMATS)}"
        )
    if path.suffix != FORMATS[fmt]:
        raise ExportError(
            f"cannot write {path}: the export path must end in {FORMATS[fmt]} for format {fmt}"
        )
    for target in (path, sidecar_path(path)):
        if target.is_dir():
            raise ExportError(f"cannot write {path}: {target} is a directory")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ExportError(f"cannot write {path}: {parent} is not a directory")
    return path


class ProgramRunner:
    """Calls an exported policy program's graph directly: ``runner(*inputs) -> tuple``.

    ``ExportedProgram.module()`` re-checks the input structure and guards on
    every call (about 0.5 ms); the runner feeds the graph its weights and the
    inputs as flat arguments instead (the batch size is still free).

    Examples:
        >>> import torch
        >>> from tdrl.data import Categorical
        >>> from tdrl.modules import QValueActor
        >>> q = QValueActor(torch.nn.Linear(4, 3), spec=Categorical(3))
        >>> runner = ProgramRunner(export_policy(q, torch.zeros(1, 4)).program)
        >>> [t.shape for t in runner(torch.zeros(6, 4))]
        [torch.Size([6])]
    """

    def __init__(self, program: torch.export.ExportedProgram) -> None:
        from torch.export.graph_signature import InputKind, OutputKind

        sig = program.graph_signature
        if any(o.kind is not OutputKind.USER_OUTPUT for o in sig.output_specs):
            raise ValueError("the program mutates its buffers; it is not a policy program")
        state, consts = program.state_dict, program.constants
        self._gm = program.graph_module
        self._lifted: list[torch.Tensor] = []
        self.n_inputs = 0
        for spec in sig.input_specs:
            if spec.kind is InputKind.USER_INPUT:
                self.n_inputs += 1
                continue
            if self.n_inputs:
                raise ValueError("the program interleaves weights and inputs")
            # non-persistent buffers live with the constants
            value = state[spec.target] if spec.target in state else consts[spec.target]
            self._lifted.append(value.detach())

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self._gm(*self._lifted, *inputs))


class ExportedPolicy(nn.Module):
    """A traced policy: ``forward(*inputs)`` returns the action[, value][, log-prob].

    Inputs are positional, in :attr:`input_names` order (observation first,
    then e.g. the action mask), with any batch size; outputs come in
    :attr:`output_names` order (one tensor when there is one output). No
    TensorDict is built at call time. :meth:`save` writes a ``.pt2`` or
    ``.onnx`` file with its JSON sidecar.

    Examples:
        >>> import torch
        >>> from tdrl.data import Categorical
        >>> from tdrl.modules import QValueActor
        >>> q = QValueActor(torch.nn.Linear(4, 3), spec=Categorical(3))
        >>> exported = export_policy(q, torch.zeros(1, 4))
        >>> exported.input_names, exported.output_names
        (['observation'], ['action'])
        >>> exported(torch.randn(7, 4)).shape
        torch.Size([7])
    """

    def __init__(
        self,
        program: torch.export.ExportedProgram,
        signature: PolicySignature,
        inputs: tuple[torch.Tensor, ...],
        metadata: dict[str, Any],
    ) -> None:
        super().__init__()
        self.program = program
        self.signature = signature
        self.metadata = metadata
        self._inputs = inputs
        self._run = ProgramRunner(program)

    @property
    def input_names(self) -> list[str]:
        return self.signature.input_names

    @property
    def output_names(self) -> list[str]:
        return self.signature.output_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.signature.inputs):
            raise TypeError(
                f"the exported policy takes {len(self.signature.inputs)} inputs "
                f"({', '.join(self.input_names)}), got {len(inputs)}"
            )
        outs = self._run(*inputs)
        return outs[0] if len(outs) == 1 else outs

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Writes the program as ``.pt2`` (torch.export) or ``.onnx``, plus ``<file>.json``.

        ``format`` defaults to the suffix of ``path``. Returns the path written.
        Both files are written to temp files first and renamed into place only
        when both are complete: a failure leaves the previous pair as it was
        and raises :class:`~tdrl.export.trace.ExportError` naming the path
        (see :func:`check_target` for the paths refused up front).
        """
        path = Path(path)
        fmt = format or path.suffix.lstrip(".")
        check_target(path, fmt)
        side = sidecar_path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        side_tmp = side.with_name(f".{side.name}.tmp-{os.getpid()}")
        meta = {**self.metadata, "format": fmt, "file": path.name}
        if fmt == "onnx":
            meta["onnx_opset"] = OPSET
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "pt2":
                torch.export.save(self.program, str(tmp))
            else:
                write_onnx(self.program, self._inputs, tmp, self.input_names, self.output_names)
            side_tmp.write_text(json.dumps(meta, indent=2) + "\n")
            os.replace(tmp, path)
            os.replace(side_tmp, side)
        except OSError as err:
            reason = err.strerror or str(err) or type(err).__name__
            raise ExportError(f"cannot write {path}: {reason}") from None
        finally:
            for t in (tmp, side_tmp):
                try:
                    t.unlink(missing_ok=True)
                except OSError:
                    pass
        return path


def export_policy(
    policy: nn.Module,
    example_observation: Any,
    *,
    value: bool = False,
    log_prob: bool = False,
    in_keys: Sequence[NestedKey] | None = None,
    out_keys: Sequence[NestedKey] | None = None,
    exploration_type: ExplorationType | str = ExplorationType.DETERMINISTIC,
    dtype: torch.dtype | None = None,
) -> ExportedPolicy:
    """Traces ``policy``'s deterministic path into an :class:`ExportedPolicy`.

    Args:
        policy: a tdrl policy: a ``ProbabilisticActor``, a ``QValueActor`` (with or
            without an action mask), an operator's ``get_policy_operator()``, or a whole
            ``ActorValueOperator`` (with ``value=True``).
        example_observation: one batch of inputs (leading batch dimension): a tensor
            when the policy reads one key, else a dict / TensorDict holding every key.
        value: also return the value (``state_value`` of the operator's value head,
            or a Q-value actor's ``chosen_action_value``).
        log_prob: also return the log-probability of the action (the actor must be
            built with ``return_log_prob=True``).
        in_keys / out_keys: override the inputs (default: the policy's in_keys) and
            the outputs (default: action[, value][, log-prob]).
        exploration_type: how the action is read from the distribution
            (``DETERMINISTIC`` by default, as in evaluation).
        dtype: compute in this floating dtype (e.g. ``torch.float64``): the program
            runs a copy of the policy cast to ``dtype`` between casts of the floating
            inputs to ``dtype`` and of the floating outputs back to the example's
            dtype (``policy`` itself is not changed). Default: the policy's own dtype.

    Raises:
        ExportError: a part of the policy cannot be traced; the message names it.

    Examples:
        >>> import torch
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.modules import NormalParamExtractor, ProbabilisticActor, TanhNormal
        >>> net = TensorDictModule(torch.nn.Sequential(torch.nn.Linear(3, 4),
        ...     NormalParamExtractor()), in_keys=["observation"], out_keys=["loc", "scale"])
        >>> actor = ProbabilisticActor(net, in_keys=["loc", "scale"],
        ...     distribution_class=TanhNormal, return_log_prob=True)
        >>> exported = export_policy(actor, torch.zeros(1, 3), log_prob=True)
        >>> action, logp = exported(torch.randn(5, 3))
        >>> action.shape, logp.shape, exported.output_names
        (torch.Size([5, 2]), torch.Size([5]), ['action', 'sample_log_prob'])
    """
    signature = resolve_signature(
        policy, value=value, log_prob=log_prob, in_keys=in_keys, out_keys=out_keys
    )
    inputs = example_inputs(signature, example_observation)
    if dtype is not None:
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        policy = copy.deepcopy(policy).to(dtype)
    wrapper = TensorPolicy(policy, signature, ExplorationType(exploration_type), dtype)
    program = trace_policy(wrapper, inputs)
    outputs = ProgramRunner(program)(*inputs)
    metadata = {
        "tdrl_version": tdrl.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "policy": type(policy).__name__,
        "exploration_type": wrapper.exploration_type.name,
        "compute_dtype": str(dtype or _param_dtype(policy)).removeprefix("torch."),
        "batch_dim": 0,
        "inputs": _describe_tensors(signature.inputs, inputs),
        "outputs": _describe_tensors(signature.outputs, outputs),
        "action_space": _action_space(policy, signature.outputs[0]),
    }
    return ExportedPolicy(program, signature, inputs, metadata)


def _param_dtype(policy: nn.Module) -> torch.dtype:
    floating = (p.dtype for p in policy.parameters() if p.is_floating_point())
    return next(floating, torch.get_default_dtype())


def _describe_tensors(keys: list[NestedKey], tensors: Sequence[torch.Tensor]) -> list[dict]:
    from tdrl.export.trace import key_name

    return [
        {
            "name": key_name(k),
            "key": k if isinstance(k, str) else list(k),
            "shape": list(t.shape[1:]),
            "dtype": str(t.dtype).removeprefix("torch."),
        }
        for k, t in zip(keys, tensors)
    ]


def _action_space(policy: nn.Module, action_key: NestedKey) -> dict[str, Any] | None:
    """The action spec of the head that writes ``action_key``, as JSON (or None)."""
    leaf = None
    for m in policy.modules():
        spec = getattr(m, "spec", None)
        if spec is None or action_key not in getattr(m, "out_keys", ()):
            continue
        try:
            leaf = spec[action_key] if hasattr(spec, "keys") else spec
        except KeyError:
            continue
        if leaf is not None:
            break
    if leaf is None:
        return None
    out: dict[str, Any] = {
        "spec": type(leaf).__name__,
        "shape": list(leaf.shape),
        "dtype": str(leaf.dtype).removeprefix("torch."),
    }
    space = getattr(leaf, "space", None)
    for name in ("low", "high"):
        bound = getattr(space, name, None)
        if isinstance(bound, torch.Tensor):
            out[name] = bound.tolist()
    for name in ("n", "nvec"):
        size = getattr(space, name, None)
        if size is not None:
            out[name] = size if isinstance(size, int) else [int(s) for s in size]
    return out
