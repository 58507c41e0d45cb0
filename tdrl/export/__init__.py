"""Deploy tdrl policies as plain tensor-in / tensor-out models (torch.export ``.pt2``, ONNX).

:func:`export_policy` traces a policy's deterministic path (no TensorDict at
call time) with a dynamic batch dimension; :meth:`ExportedPolicy.save` writes
``.pt2`` or ``.onnx`` plus a JSON sidecar (input/output names, shapes and dtypes,
action space and bounds, versions); :func:`load_policy` runs a saved file.
ONNX needs the ``export`` extra (``pip install "tdrl[export]"``), imported only
when an ONNX file is written or run.

Examples:
    >>> import torch
    >>> from tdrl.data import OneHot
    >>> from tdrl.export import export_policy
    >>> from tdrl.modules import QValueActor
    >>> q = QValueActor(torch.nn.Linear(4, 2), spec=OneHot(2), action_mask_key="mask")
    >>> exported = export_policy(q, {"observation": torch.zeros(1, 4),
    ...                              "mask": torch.ones(1, 2, dtype=torch.bool)})
    >>> exported.input_names
    ['observation', 'mask']
    >>> exported(torch.randn(3, 4), torch.tensor([[True, False]] * 3))
    tensor([[1, 0],
            [1, 0],
            [1, 0]])
"""
from tdrl.export.onnx import MissingExtraError
from tdrl.export.policy import (
    FORMATS,
    ExportedPolicy,
    ProgramRunner,
    export_policy,
    sidecar_path,
)
from tdrl.export.runtime import LoadedPolicy, load_policy
from tdrl.export.trace import ExportError, PolicySignature, TensorPolicy

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportedPolicy",
    "LoadedPolicy",
    "MissingExtraError",
    "PolicySignature",
    "ProgramRunner",
    "TensorPolicy",
    "export_policy",
    "load_policy",
    "sidecar_path",
]
