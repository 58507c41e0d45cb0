"""ONNX writing and running: the optional ``onnx`` / ``onnxruntime`` / ``onnxscript`` extra.

Nothing here is imported by ``import tdrl`` or ``import tdrl.export``; the
functions import the extra on call and raise an error with the install command
when it is missing.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

__all__ = ["OPSET", "MissingExtraError", "onnx_session", "require", "write_onnx"]

#: ONNX opset of the written files: supported by onnxruntime >= 1.14 and by the
#: torch exporter's operator library.
OPSET = 18

_INSTALL = 'pip install "tdrl[export]"  (or: pip install onnx onnxruntime onnxscript)'


class MissingExtraError(ModuleNotFoundError):
    """A package of the ``export`` extra is missing; the message gives the install command."""


def require(*names: str) -> None:
    """Raises :class:`MissingExtraError` naming the install command if a package is missing.

    Examples:
        >>> require("a_package_that_does_not_exist")
        Traceback (most recent call last):
        ...
        tdrl.export.onnx.MissingExtraError: ONNX export needs a_package_that_does_not_exist, ...
    """
    import importlib.util

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        raise MissingExtraError(
            f"ONNX export needs {', '.join(missing)}, which is not installed; install the "
            f"export extra: {_INSTALL}"
        )


# Numerical Recipes' erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2): relative error
# below 1.2e-7 for every z >= 0, and written in log space it never underflows.
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)


def _log_ndtr(x: Any) -> Any:
    """ONNX translation of ``torch.special.log_ndtr``, accurate in both tails.

    The generic translation (``log(ndtr(x))``) returns ``-inf`` below about -13
    in float32, where TruncatedNormal's mirrored tails evaluate it.
    """
    from onnxscript.onnx_opset import opset18 as op

    def c(value: float) -> Any:
        return op.CastLike(op.Constant(value_float=value), x)

    z = op.Mul(op.Abs(x), c(1.0 / math.sqrt(2.0)))
    t = op.Div(c(1.0), op.Add(c(1.0), op.Mul(z, c(0.5))))
    poly = c(_ERFC_COEFFS[-1])
    for coeff in reversed(_ERFC_COEFFS[:-1]):
        poly = op.Add(op.Mul(poly, t), c(coeff))
    log_erfc = op.Add(op.Log(t), op.Sub(poly, op.Mul(z, z)))  # log erfc(|x| / sqrt 2)
    left = op.Sub(log_erfc, c(math.log(2.0)))  # x < 0: log(erfc / 2)
    right = op.Log(op.Sub(c(1.0), op.Mul(op.Exp(log_erfc), c(0.5))))  # x >= 0: log(1 - erfc/2)
    return op.Where(op.Less(x, c(0.0)), left, right)


def _log1p(x: Any) -> Any:
    """``log1p`` without the cancellation of ``log(1 + x)`` (Goldberg's correction)."""
    from onnxscript.onnx_opset import opset18 as op

    one = op.CastLike(op.Constant(value_float=1.0), x)
    u = op.Add(one, x)
    d = op.Sub(u, one)
    exact = op.Div(op.Mul(op.Log(u), x), d)
    return op.Where(op.Equal(d, op.Sub(one, one)), x, exact)


def _expm1(x: Any) -> Any:
    """``expm1`` without the cancellation of ``exp(x) - 1`` (Kahan's correction)."""
    from onnxscript.onnx_opset import opset18 as op

    one = op.CastLike(op.Constant(value_float=1.0), x)
    u = op.Exp(x)
    d = op.Sub(u, one)
    exact = op.Div(op.Mul(d, x), op.Log(u))
    exact = op.Where(op.Equal(d, op.Neg(one)), d, exact)  # exp underflowed: -1
    exact = op.Where(op.IsInf(u), u, exact)
    return op.Where(op.Equal(d, op.Sub(one, one)), x, exact)


def write_onnx(
    program: torch.export.ExportedProgram,
    inputs: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
) -> None:
    """Converts an exported policy program to ONNX (opset :data:`OPSET`, dynamic batch)."""
    require("onnx", "onnxscript")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(
            program,
            inputs,
            dynamo=True,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            custom_translation_table={
                torch.ops.aten.special_log_ndtr.default: _log_ndtr,
                torch.ops.aten.log1p.default: _log1p,
                torch.ops.aten.expm1.default: _expm1,
            },
            verbose=False,
        )
    onnx_program.save(str(path))


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` for ``path`` (CPU), with ``threads`` intra-op threads."""
    require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
