"""The argument-checking helpers of memscore._validate: wrong type -> TypeError, wrong
value -> ValueError, messages naming the argument, what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest

from memscore._validate import check_bool, check_bytes, check_choice, check_float, check_int

# ----------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: check_int("3", "n", 1), TypeError, "n: expected an integer, got '3'"),
        (lambda: check_int(True, "n", 1), TypeError, "n: expected an integer, got True"),
        (lambda: check_int(2.0, "n", 1), TypeError, "n: expected an integer, got 2.0"),
        (lambda: check_int(0, "n", 1), ValueError, "n: expected an integer >= 1, got 0"),
        (lambda: check_int(9, "n", 1, 8), ValueError, r"n: expected an integer in 1..8, got 9"),
        (lambda: check_float("x", "lr", 0.0), TypeError, "lr: expected a number, got 'x'"),
        (lambda: check_float(False, "lr", 0.0), TypeError, "lr: expected a number"),
        (lambda: check_float(float("nan"), "lr"), ValueError, "lr: expected a finite number, got nan"),
        (lambda: check_float(float("inf"), "lr", 0.0), ValueError, "lr: expected a number >= 0"),
        (lambda: check_float(0.0, "keep", 0.0, 1.0, low_open=True), ValueError, r"keep: expected a number in \(0, 1\]"),
        (lambda: check_choice(1, "metric", ("l2",)), TypeError, r"metric: expected one of \['l2'\], got 1"),
        (lambda: check_choice("l1", "metric", ("l2",)), ValueError, "got 'l1'"),
        (lambda: check_bool(1, "stderr"), TypeError, "stderr: expected True or False, got 1"),
        (lambda: check_bytes("lots", "memory"), ValueError, "memory: expected a size such as 4096"),
        (lambda: check_bytes("0.1B", "memory"), ValueError, "memory: expected a size of at least one byte"),
        (lambda: check_bytes(0, "memory"), ValueError, "memory: expected an integer >= 1, got 0"),
        (lambda: check_bytes(1.5, "memory"), TypeError, "memory: expected an integer, got 1.5"),
        # beyond a float's range: a named ValueError, not int(inf)'s OverflowError
        (
            lambda: check_bytes("9" * 400 + "GiB", "memory"),
            ValueError,
            r"memory: expected a size such as 4096, '512MiB' or '8GB', got '9{20}\.\.\.9{5}GiB': too large",
        ),
        (lambda: check_bytes("1e400", "memory"), ValueError, "memory: expected a size such as 4096"),
    ],
)
def test_helpers_follow_the_rule(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_helpers_pass_good_values_through():
    assert check_int(np.int64(3), "n", 1) == 3 and type(check_int(np.int64(3), "n")) is int
    assert check_float(np.float32(0.5), "x", 0, 1) == 0.5
    assert check_float(float("inf"), "sigma", 0.0, low_open=True, allow_inf=True) == float("inf")
    assert check_bytes("1.5GiB", "m") == 3 * 2**29 and check_bytes(" 8 gb ", "m") == 8 * 10**9
    assert check_bytes("9" * 290 + "T", "m") == int(float("9" * 290) * 2**40)  # huge, but a float: kept
    assert check_bytes(2**80, "m") == 2**80
    assert check_bool(np.bool_(True), "b") is True
