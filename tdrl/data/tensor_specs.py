"""TorchRL's ``torchrl.data.tensor_specs`` import path: re-exports of :mod:`tdrl.data.specs`.

``_CHECK_SPEC_ENCODE`` (default False) is TorchRL's switch that makes ``encode`` and
``to_numpy`` check their values against the spec; setting it here sets it for every spec.

Examples:
    >>> from tdrl.data import tensor_specs
    >>> from tdrl.data.specs import OneHot
    >>> tensor_specs.OneHot is OneHot
    True
    >>> tensor_specs._CHECK_SPEC_ENCODE = True
    >>> OneHot(3).encode(5)
    Traceback (most recent call last):
    ...
    AssertionError: OneHot.encode: categorical value(s) must be in [0, 2], got min=5, max=5
    >>> tensor_specs._CHECK_SPEC_ENCODE = False
"""
import sys
import types

from tdrl.data.specs import *  # noqa: F403
from tdrl.data.specs import __all__  # noqa: F401
from tdrl.data.specs._utils import _Settings


class _TensorSpecsModule(types.ModuleType):
    """Routes ``_CHECK_SPEC_ENCODE`` reads and writes to the specs' shared settings."""

    @property
    def _CHECK_SPEC_ENCODE(self) -> bool:  # noqa: N802 (TorchRL's name)
        return _Settings.check_spec_encode

    @_CHECK_SPEC_ENCODE.setter
    def _CHECK_SPEC_ENCODE(self, value: bool) -> None:  # noqa: N802
        _Settings.check_spec_encode = bool(value)


sys.modules[__name__].__class__ = _TensorSpecsModule
