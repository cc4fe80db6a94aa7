"""YAML files from users, read so that no file can crash, hang or flood the reader.

``yaml.safe_load`` constructs no objects, but it still expands aliases (a
342-byte "billion laughs" file became a 4.3 MB structure, then a 4.3 MB error
message), recurses once per nesting level (a deep enough file raised
``RecursionError`` with a stack trace), and reads any bytes (a binary file
raised a decode error). :func:`load_yaml` refuses all three with a one-line
message that names the file, and caps the file's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent

MAX_BYTES = 1 << 20  # configuration and token files are small; this is generous


class SafeYamlError(ValueError):
    """The file cannot be read as plain YAML; the message names the file and why."""


class _NoAliasLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases (``*name``: no expansion bombs) and a key
    given twice in one mapping (YAML would silently keep the last: a token listed
    twice became whatever its second entry said)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                shown = str(key)[:4] + "…" if len(str(key)) > 8 else str(key)
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {shown!r} appears twice", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def loads_yaml(text: str, source: str = "yaml") -> Any:
    """Parse ``text``; :class:`SafeYamlError` on anything but plain, reasonably shaped YAML."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise SafeYamlError(f"{source}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SafeYamlError(f"{source}: invalid YAML{where}: {str(problem)[:200]}") from None


def load_yaml(path: str | Path, max_bytes: int = MAX_BYTES, what: str = "file") -> Any:
    """Read and parse a YAML file (see the module docstring for what is refused);
    ``what`` names the kind of file in the message when it cannot be read."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise SafeYamlError(f"{p}: {size} bytes; a YAML file here is at most {max_bytes}")
        raw = p.read_bytes()
    except IsADirectoryError:
        raise SafeYamlError(f"{p}: is a directory, not a YAML file") from None
    except OSError as exc:
        raise SafeYamlError(f"cannot read {what} {str(p)!r}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SafeYamlError(f"{p}: not a text file (it is not valid UTF-8)") from None
    if "\x00" in text:
        raise SafeYamlError(f"{p}: not a text file (it holds NUL bytes)")
    return loads_yaml(text, str(p))
