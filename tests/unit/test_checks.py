"""shadownet.checks: one message shape for config, REST bodies, rules and token files."""

from __future__ import annotations

import math

import pytest

from shadownet.checks import CHECK, Checks, Invalid


class Refused(Invalid):
    pass


@pytest.mark.parametrize("value,message", [
    (math.nan, "x: must be a finite number, got nan"),
    (math.inf, "x: must be a finite number, got inf"),
    (10**400, "x: must be a finite number, got an integer of 401 digits"),
    (True, "x: must be a number, got bool True"),
    ("1", "x: must be a number, got str '1'"),
    (1.5, "x: must be between 0 and 1, got 1.5"),
    (-1, "x: must be between 0 and 1, got -1"),
])
def test_numbers_are_finite_real_numbers_within_bounds(value, message):
    with pytest.raises(Invalid) as exc:
        CHECK.number(value, "x", 0, 1)
    assert str(exc.value) == message


def test_integers_refuse_booleans_floats_and_show_huge_values_by_length():
    assert CHECK.integer(7, "n", 1) == 7
    for value, got in ((True, "bool True"), (1.0, "float 1.0")):
        with pytest.raises(Invalid, match=f"n: must be an integer, got {got}"):
            CHECK.integer(value, "n")
    with pytest.raises(Invalid, match=r"n: must be <= 10, got an integer of 31 digits"):
        CHECK.integer(10**30, "n", high=10)


def test_the_bound_error_class_is_raised_so_callers_keep_catching_their_own():
    check = Checks(Refused)
    with pytest.raises(Refused, match=r"body: unknown key 'nodee' \(expected one of: node\)"):
        check.keys({"nodee": 1}, "body", ("node",))
    with pytest.raises(Refused, match=r"^body\.node: is required$"):
        check.keys({}, "body", ("node",), ("node",))


def test_strings_match_whole_patterns_and_choices_ignore_case():
    import re

    digits = re.compile(r"[0-9]+")
    assert CHECK.string("123", "s", pattern=digits) == "123"
    with pytest.raises(Invalid, match="s: must be digits"):
        CHECK.string("123\n", "s", pattern=digits, what="digits")  # no trailing newline
    assert CHECK.choice("TCP", "p", ("tcp", "udp")) == "tcp"
    with pytest.raises(Invalid, match="s: must be at most 3 characters long, got 4"):
        CHECK.string("abcd", "s", 3)


def test_network_values():
    assert CHECK.ipv4("10.0.0.1", "ip") == "10.0.0.1"
    assert CHECK.ip("fd00::0001", "ip") == "fd00::1"
    assert CHECK.cidr("10.0.0.7/24", "c") == "10.0.0.0/24"
    assert CHECK.mac("AA:00:00:00:00:01", "m") == "aa:00:00:00:00:01"
    for call, message in [
        (lambda: CHECK.ipv4("224.0.0.1", "ip", unicast=True), "must be a unicast address"),
        (lambda: CHECK.mac("01:00:5e:00:00:01", "m", unicast=True), "must be a unicast MAC"),
        (lambda: CHECK.cidr("10.0.0.0/33", "c"), "must be a CIDR prefix"),
        (lambda: CHECK.port(0, "p"), "must be between 1 and 65535, got 0"),
    ]:
        with pytest.raises(Invalid, match=message):
            call()


def test_secret_input_is_never_echoed():
    quiet = Checks(show_values=False)
    for call in (lambda: quiet.string(12345, "t.sha256"),
                 lambda: quiet.integer(12345, "t.n", 0, 10),
                 lambda: quiet.choice("12345", "t.role", ("admin",))):
        with pytest.raises(Invalid) as exc:
            call()
        assert "12345" not in str(exc.value)
