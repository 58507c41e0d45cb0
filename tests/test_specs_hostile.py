"""Hostile inputs to ``spec.encode``: NaN, +-inf and out-of-range values raise, valid ones encode.

Casting NaN, inf or 1e30 to an integer dtype silently gives int64's minimum (or wraps), so
``encode`` applies ``project``'s NaN rule and a range rule for every spec: a ``ValueError``
naming the spec and the problem (an ``AssertionError`` while TorchRL's
``_CHECK_SPEC_ENCODE`` switch is on, as TorchRL's checked encode raises).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
    tensor_specs,
)

NAN, INF = math.nan, math.inf


def _specs() -> dict[str, tuple]:
    """name -> (spec, [(bad value, message fragment)], [valid values])."""
    return {
        "OneHot": (
            OneHot(3),
            [([NAN, 0.0, 1.0], "contains NaN"), ([INF, 0.0, 0.0], "must be in [0, 1]"),
             ([0.0, 2.0, 0.0], "must be in [0, 1]"), (5, "must be in [0, 2]"),
             (-1, "must be in [0, 2]")],
            [[0, 1, 0], 2, np.array(0), [0.0, 0.0, 1.0]],
        ),
        "OneHot-int64": (
            OneHot(3, dtype=torch.int64),
            [([NAN, 0.0, 1.0], "contains NaN"), ([0.0, -INF, 1.0], "must be in [0, 1]"),
             ([0, 2, 0], "must be in [0, 1]")],
            [[1, 0, 0], 1],
        ),
        "Categorical": (
            Categorical(3),
            [(NAN, "contains NaN"), (INF, "must be in [0, 2]"), (-INF, "must be in [0, 2]"),
             (3, "must be in [0, 2]"), (-1, "must be in [0, 2]"), (1e30, "must be in [0, 2]")],
            [0, 2, 1.0, np.int64(2)],
        ),
        "Categorical-int8": (
            Categorical(3, dtype=torch.int8),
            [(NAN, "contains NaN"), (300, "must be in [0, 2]")],
            [2],
        ),
        "Bounded-int": (
            Bounded(-2, 5, shape=(2,), dtype=torch.int64),
            [([NAN, 1.0], "contains NaN"), ([INF, 1.0], "must be in [low, high]"),
             ([6, 1], "must be in [low, high]"), ([1, -3], "must be in [low, high]")],
            [[-2, 5], [0.0, 3.0], np.array([1, 1])],
        ),
        "Bounded-float": (
            # float bounds are not range-checked (environments overshoot them); NaN is refused
            Bounded(0.0, 1.0, shape=(2,)),
            [([NAN, 0.5], "contains NaN")],
            [[0.0, 1.0], [INF, 2.0]],
        ),
        "Unbounded-int64": (
            Unbounded(shape=(2,), dtype=torch.int64),
            [([NAN, 1.0], "contains NaN"), ([INF, 1.0], "must be in [-9223372036854775808"),
             ([1e30, 1.0], "must be in"), ([2.0**63, 0.0], "must be in")],
            [[-(2**62), 2**62], [3.0, -4.0]],
        ),
        "Unbounded-int32": (
            Unbounded(shape=(2,), dtype=torch.int32),
            [([2**40, 1], "must be in [-2147483648, 2147483647]"),
             ([-(2.0**40), 1.0], "must be in [-2147483648, 2147483647]")],
            [[2**31 - 1, -(2**31)]],
        ),
        "Unbounded-float": (
            # a floating Unbounded spec admits every value of its dtype, NaN included
            Unbounded(shape=(2,)),
            [],
            [[NAN, INF], [1.0, -2.0]],
        ),
        "MultiCategorical": (
            MultiCategorical([2, 3]),
            [([NAN, 1.0], "contains NaN"), ([INF, 1.0], "must be in [low, high]"),
             ([2, 1], "high=[1, 2]"), ([1, 3], "must be in [low, high]"),
             ([-1, 0], "must be in [low, high]")],
            [[1, 2], [0.0, 1.0]],
        ),
        "MultiOneHot": (
            MultiOneHot([2, 3]),
            [([NAN, 0.0, 0.0, 0.0, 1.0], "contains NaN"), ([2, 1], "categorical values"),
             ([1.0, 0.0, 0.0, 3.0, 0.0], "must be in [0, 1]")],
            [[0, 1, 0, 0, 1], [1, 2]],
        ),
        "Binary": (
            Binary(3),
            [([NAN, 0.0, 1.0], "contains NaN"), ([2, 0, 1], "must be in [0, 1]"),
             ([INF, 0.0, 1.0], "must be in [0, 1]"), ([-1, 0, 1], "must be in [0, 1]")],
            [[1, 0, 1], [0.0, 1.0, 1.0]],
        ),
    }


_BAD = [(name, value, frag) for name, (_, bad, _) in _specs().items() for value, frag in bad]
_GOOD = [(name, value) for name, (_, _, good) in _specs().items() for value in good]


@pytest.mark.parametrize(("name", "value", "fragment"), _BAD,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(_BAD)])
def test_bad_value_raises_naming_the_spec(name: str, value, fragment: str) -> None:
    spec = _specs()[name][0]
    with pytest.raises(ValueError) as err:
        spec.encode(value)
    msg = str(err.value)
    assert msg.startswith(f"{type(spec).__name__}.encode: "), msg
    assert fragment in msg, msg


@pytest.mark.parametrize(("name", "value"), _GOOD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(_GOOD)])
def test_valid_value_encodes(name: str, value) -> None:
    spec = _specs()[name][0]
    out = spec.encode(value)
    assert out.dtype == spec.dtype and out.shape == spec.shape
    if not (isinstance(spec, Unbounded) and spec.dtype.is_floating_point) and not (
        isinstance(spec, Bounded) and spec.dtype.is_floating_point
    ):
        assert spec.is_in(out)
    expected = torch.as_tensor(np.asarray(value))
    if isinstance(spec, (OneHot, MultiOneHot)) and expected.shape != spec.shape:
        expected = out  # category indices come back one-hot: checked by is_in above
    torch.testing.assert_close(out.to(torch.float64), expected.to(torch.float64).reshape(spec.shape),
                               equal_nan=True)


@pytest.mark.parametrize("name", [n for n, (_, bad, _) in _specs().items() if bad])
def test_checked_encode_raises_assertion(name: str) -> None:
    """With TorchRL's ``_CHECK_SPEC_ENCODE`` on, out-of-spec values raise ``AssertionError``."""
    spec, bad, _ = _specs()[name]
    ranged = [v for v, frag in bad if "NaN" not in frag]
    tensor_specs._CHECK_SPEC_ENCODE = True
    try:
        for value in ranged:
            with pytest.raises(AssertionError, match=f"{type(spec).__name__}.encode"):
                spec.encode(value)
    finally:
        tensor_specs._CHECK_SPEC_ENCODE = False


def test_nan_and_range_errors_in_a_composite_name_the_leaf() -> None:
    spec = Composite(action=Categorical(4), obs=Bounded(-1.0, 1.0, shape=(2,)))
    with pytest.raises(ValueError, match=r"Categorical.encode: value\(s\) must be in \[0, 3\]"):
        spec.encode({"action": 4, "obs": [0.0, 0.0]})
    with pytest.raises(ValueError, match="BoundedContinuous.encode: the value contains NaN"):
        spec.encode({"action": 1, "obs": [NAN, 0.0]})
    out = spec.encode({"action": 3, "obs": [0.5, -0.5]})
    assert out["action"].item() == 3 and out["obs"].tolist() == [0.5, -0.5]


def test_stacked_spec_checks_each_part() -> None:
    spec = torch.stack([Categorical(3), Categorical(5)], 0)
    assert spec.encode([2, 4]).tolist() == [2, 4]
    with pytest.raises(ValueError, match=r"Categorical.encode: value\(s\) must be in \[0, 2\]"):
        spec.encode([3, 4])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), data=st.data())
def test_categorical_encode_accepts_exactly_its_categories(n: int, data) -> None:
    spec = Categorical(n)
    k = data.draw(st.integers(-3 * n, 3 * n))
    as_float = data.draw(st.booleans())
    value = float(k) if as_float else k
    if 0 <= k < n:
        assert spec.encode(value).item() == k
    else:
        with pytest.raises(ValueError, match=rf"must be in \[0, {n - 1}\]"):
            spec.encode(value)


@settings(max_examples=60, deadline=None)
@given(x=st.floats(allow_nan=True, allow_infinity=True, width=32))  # a list encodes as float32
def test_integer_unbounded_encode_never_wraps(x: float) -> None:
    """A float either encodes to its truncation in int32's range or raises: never a wrapped value."""
    spec = Unbounded(shape=(1,), dtype=torch.int32)
    if math.isfinite(x) and -(2.0**31) <= x < 2.0**31:
        assert spec.encode([x]).item() == int(x)
    else:
        with pytest.raises(ValueError, match="UnboundedDiscrete.encode"):
            spec.encode([x])
