"""TorchRL's ``torchrl.data.tensor_specs`` import path: re-exports of :mod:`tdrl.data.specs`.

Examples:
    >>> from tdrl.data.tensor_specs import OneHot
    >>> from tdrl.data.specs import OneHot as Same
    >>> OneHot is Same
    True
"""
from tdrl.data.specs import *  # noqa: F403
from tdrl.data.specs import __all__  # noqa: F401
