"""YAML as digitd reads its own files (``config.yaml``, form templates).

Safe loading, a key given twice in one mapping refused, and ``1e3`` read as a
number (as YAML 1.2 and people read it). Errors are one line, without the
file's name: the caller puts it in front.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import one_line


class YAMLTextError(ValueError):
    """Text that is not YAML digitd takes; the message says where and why."""


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(key)
        self.key, self.first_line, self.second_line = key, first_line, second_line


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads ``1e3`` as a number."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in seen:
                raise _DuplicateKey(key, seen[key], line)
            seen[key] = line
        except TypeError:  # unhashable key; construct_mapping reports it
            pass
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) reads "1e3" as a string; YAML 1.2 and people read a number.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, show_key=repr) -> Any:
    """The document in ``text``; YAMLTextError when it is not YAML, or a mapping
    holds a key twice (named by ``show_key``)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except _DuplicateKey as exc:
        raise YAMLTextError(f"key {show_key(exc.key)} appears twice "
                            f"(lines {exc.first_line} and {exc.second_line})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "syntax error"
        raise YAMLTextError(f"invalid YAML{where}: {one_line(what)}") from None
    except yaml.YAMLError as exc:
        raise YAMLTextError(f"invalid YAML: {one_line(exc)}") from None
