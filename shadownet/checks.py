"""One way to check input from people and from the network: config, REST bodies, rules.

Every message has the same shape, ``<where>: <what was expected>, got <what came>``,
where ``where`` is the path to the value (``shadownet.yaml: switch_drain.confirm``,
``service.thresholds.enter_probability``, ``rules.yaml: rule 'syn'.window``), so a
user can find the bad value without reading code. Numbers must be finite (NaN
compares false with every bound and is not JSON), booleans are never numbers,
and huge integers are shown by their length, not printed whole.

Each caller keeps its own exception class, so that code catching
``ServiceError`` or ``ConfigError`` still does: :class:`Checks` is bound to one
class, and all those classes derive from :class:`Invalid`::

    check = Checks(ServiceError)
    port = check.integer(data["port"], "service.port", 1, 65535)
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class Invalid(ValueError):
    """Bad input; the message says where and what was expected."""


def shown(value: object) -> str:
    """A value as it appears in messages: a bounded repr (a huge integer by its length)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def kind(value: object) -> str:
    """A value of the wrong type as it appears in messages: its type, then the value."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return shown(value)
    return f"{type(value).__name__} {shown(value)}"


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low!r} and {high!r}"
    return f">= {low!r}" if low is not None else f"<= {high!r}"


class Checks:
    """The checks, raising ``error`` (an :class:`Invalid` subclass)."""

    def __init__(self, error: type[Invalid] = Invalid, *, show_values: bool = True) -> None:
        """``show_values=False`` for input that may hold secrets (a tokens file): messages
        then say a bad value's type, never the value."""
        self.error = error
        self.show_values = show_values

    def fail(self, where: str, expected: str, value: object) -> Invalid:
        """A value of the wrong type or form: the exception to raise."""
        return self.error(f"{where}: {expected}, got {self._got(value, typed=True)}")

    def out_of_range(self, where: str, low: float | None, high: float | None,
                     value: object) -> Invalid:
        """A value of the right type outside its bounds: the exception to raise."""
        return self.error(f"{where}: must be {_bounds(low, high)}, got {self._got(value)}")

    def _got(self, value: object, typed: bool = False) -> str:
        if not self.show_values:
            return type(value).__name__
        return kind(value) if typed else shown(value)

    # --- structure ----------------------------------------------------------------
    def mapping(self, value: object, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be a mapping", value)
        return value

    def keys(self, data: Mapping[str, Any], where: str, allowed: Iterable[str],
             required: Iterable[str] = ()) -> None:
        """No unknown key; every required one present (and not null)."""
        allowed = list(allowed)
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise self.error(f"{where}: unknown key {unknown[0]!r} "
                             f"(expected one of: {', '.join(allowed)})")
        for key in required:
            self.required(data, key, where)

    def required(self, data: Mapping[str, Any], key: str, where: str) -> Any:
        """``data[key]``, which must be there and not null."""
        if data.get(key) is None:
            raise self.error(f"{where}.{key}: is required")
        return data[key]

    def items(self, value: object, where: str, max_items: int | None = None) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "must be a list", value)
        if max_items is not None and len(value) > max_items:
            raise self.error(f"{where}: must hold at most {max_items} items, got {len(value)}")
        return value

    # --- scalars ------------------------------------------------------------------
    def boolean(self, value: object, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, "must be true or false", value)
        return value

    def integer(self, value: object, where: str, low: int | None = None,
                high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "must be an integer", value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.out_of_range(where, low, high, value)
        return value

    def number(self, value: object, where: str, low: float | None = None,
               high: float | None = None) -> float:
        """An int or a float, finite, within the bounds; returned as a float."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, "must be a number", value)
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise self.error(f"{where}: must be a finite number, got {self._got(value)}") from None
        if not math.isfinite(number):
            raise self.error(f"{where}: must be a finite number, got {self._got(value)}")
        if (low is not None and number < low) or (high is not None and number > high):
            raise self.out_of_range(where, low, high, value)
        return number

    def string(self, value: object, where: str, max_length: int | None = None,
               pattern: re.Pattern[str] | None = None, what: str = "a string") -> str:
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise self.fail(where, f"must be {what}", value)
        if max_length is not None and len(value) > max_length:
            raise self.error(f"{where}: must be at most {max_length} characters long, "
                             f"got {len(value)}")
        return value

    def choice(self, value: object, where: str, choices: Iterable[str]) -> str:
        """One of ``choices``, matched without regard to case; returned as listed."""
        options = list(choices)
        if isinstance(value, str):
            for option in options:
                if value.lower() == option.lower():
                    return option
        raise self.fail(where, f"must be one of {', '.join(options)}", value)

    # --- network values -----------------------------------------------------------
    def port(self, value: object, where: str) -> int:
        return self.integer(value, where, 1, 65535)

    def ipv4(self, value: object, where: str, unicast: bool = False) -> str:
        try:
            addr = ipaddress.IPv4Address(value) if isinstance(value, str) else None
        except ValueError:
            addr = None
        if addr is None:
            raise self.fail(where, "must be an IPv4 address", value)
        if unicast and (addr.is_multicast or addr.is_unspecified
                        or str(addr) == "255.255.255.255"):
            raise self.error(f"{where}: must be a unicast address, got {self._got(value)}")
        return str(addr)

    def ip(self, value: object, where: str) -> str:
        """An IPv4 or IPv6 address, in its canonical form."""
        if isinstance(value, str):
            try:
                return str(ipaddress.ip_address(value))
            except ValueError:
                pass
        raise self.fail(where, "must be an IP address", value)

    def cidr(self, value: object, where: str) -> str:
        if isinstance(value, str):
            try:
                return str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                pass
        raise self.fail(where, "must be a CIDR prefix like 10.0.0.0/24", value)

    def mac(self, value: object, where: str, unicast: bool = False) -> str:
        if not isinstance(value, str) or not _MAC.match(value.lower()):
            raise self.fail(where, "must be a MAC like 00:00:00:00:00:01", value)
        if unicast and int(value[:2], 16) & 1:
            raise self.error(f"{where}: must be a unicast MAC, got {self._got(value)}")
        return value.lower()


CHECK = Checks()
