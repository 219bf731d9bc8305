"""Form templates: a form's named fields and their boxes, read from YAML and validated.

A template file names the form (``form``), optionally its ``page`` size
(``width_mm``, ``height_mm``; default A4), and its ``fields``: each a ``name``,
a box as ``box_mm: [x, y, w, h]`` (millimetres from the page's top-left corner)
or ``box`` (the same as fractions of the page), and optionally ``digits`` (an
exact count; a comb box splits into that many cells), ``pattern`` (a regular
expression the whole value must match) and ``required``. :func:`load_template`
refuses anything else with a :class:`FormError`: one line naming the file and
the key; :func:`dump_template` writes one. :func:`check_value` gives a read
value its status. README: "Forms".
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from digitd.errors import one_line, os_words
from digitd.yamltext import YAMLTextError, parse_yaml

A4_MM = (210.0, 297.0)
# The forms CSV's own columns, which a field name may not take.
CSV_OWN_COLUMNS = ("file", "page", "status", "confidence")
FORM_NAME = re.compile(r"[A-Za-z0-9_-]+")
FIELD_NAME = re.compile(r"[A-Za-z0-9_]+")
TOP_KEYS = ("form", "page", "fields")
PAGE_KEYS = ("width_mm", "height_mm")
FIELD_KEYS = ("name", "box_mm", "box", "digits", "pattern", "required")

Box = tuple[float, float, float, float]


class FormError(ValueError):
    """A template that cannot be used; the message is one line naming the file and key."""


@dataclass(frozen=True)
class Field:
    """One named field of a form; ``box`` is (x, y, w, h) in mm from the top-left."""

    name: str
    box: Box
    digits: int | None = None
    pattern: str | None = None
    required: bool = False

    def cells(self) -> list[Box]:
        """The box split into ``digits`` equal cells, left to right; else [box]."""
        if not self.digits:
            return [self.box]
        x, y, w, h = self.box
        width = w / self.digits
        return [(x + i * width, y, width, h) for i in range(self.digits)]


@dataclass(frozen=True)
class Template:
    """A form: its name, page size (width, height in mm), fields, and its file."""

    name: str
    size: tuple[float, float]
    fields: tuple[Field, ...]
    path: str


def check_value(field: Field, value: str | None) -> tuple[str, tuple[str, ...]]:
    """The status a value read from ``field`` gets ("ok", "blank", "uncertain") and why."""
    if not value:
        return "blank", ("required field is empty",) if field.required else ()
    reasons = []
    if field.digits is not None:
        count = sum(ch in "0123456789" for ch in value)
        if count != field.digits:
            noun = "digit" if field.digits == 1 else "digits"
            reasons.append(f"expected {field.digits} {noun}, read {count}")
    if field.pattern is not None and re.fullmatch(field.pattern, value) is None:
        reasons.append(f"does not match pattern {field.pattern}")
    return ("uncertain", tuple(reasons)) if reasons else ("ok", ())


# ---------------------------------------------------------------------------
# Reading


def _read(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise FormError(f"{source}: cannot read the template: {os_words(exc)}") from None
    try:
        return parse_yaml(text, _show)
    except YAMLTextError as exc:
        raise FormError(f"{source}: {exc}") from None


def _show(value: Any) -> str:
    """A value as YAML shows it, for messages (one line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _num(x: float | Decimal) -> str:
    if isinstance(x, Decimal):
        x = x.normalize()
        return f"{x:f}"
    return str(int(x)) if float(x).is_integer() else str(x)


def _exact(x: float) -> Decimal:
    """A number as the person wrote it (so 0.1 + 0.2 is 0.3 and 0.6 x 210 is 126)."""
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


class _Checker:
    """Validates one template file's parsed YAML; every error names ``source`` and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, message: str) -> FormError:
        return FormError(f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}")

    def mapping(self, data: Any, key: str, allowed: tuple[str, ...],
                required: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(key, f"expected a mapping of keys to values, got {_show(data)}")
        for name in data:
            if name not in allowed:
                close = (difflib.get_close_matches(name, allowed, n=1)
                         if isinstance(name, str) else [])
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.error(key, f"unknown key {_show(name)}{hint}")
        for name in required:
            if name not in data:
                raise self.error(key, f"missing key '{name}'")
        return data

    def size(self, data: Any) -> tuple[float, float]:
        if data is None:
            return A4_MM
        page = self.mapping(data, "page", PAGE_KEYS, PAGE_KEYS)
        out = []
        for name in PAGE_KEYS:
            value = page[name]
            if not _is_number(value) or value <= 0:
                raise self.error(f"page.{name}", f"expected a number > 0, got {_show(value)}")
            out.append(float(value))
        return out[0], out[1]

    def box(self, field: dict[str, Any], key: str, size: tuple[float, float]) -> Box:
        if ("box_mm" in field) == ("box" in field):
            what = "not both" if "box" in field else "one is required"
            raise self.error(key, "give its box as box_mm (mm) or box (fractions of the page), "
                                  + what)
        fractions = "box" in field
        name = "box" if fractions else "box_mm"
        key = f"{key}.{name}"
        value = field[name]
        if not (isinstance(value, list) and len(value) == 4 and all(map(_is_number, value))):
            what = "4 fractions of the page" if fractions else "4 numbers in mm"
            raise self.error(key, f"expected [x, y, w, h], {what}, got {_show(value)}")
        x, y, w, h = (_exact(v) for v in value)
        if w <= 0 or h <= 0:
            side, v = ("width w", w) if w <= 0 else ("height h", h)
            raise self.error(key, f"{side} must be > 0, got {_num(v)}")
        width, height = ((Decimal(1), Decimal(1)) if fractions
                         else (_exact(size[0]), _exact(size[1])))
        unit = "" if fractions else " mm"
        for label, start, end, limit in (("x", x, x + w, width), ("y", y, y + h, height)):
            if start < 0:
                raise self.error(key, f"off the page ({label} = {_num(start)}{unit} < 0)")
            if end > limit:
                extent = "w" if label == "x" else "h"
                raise self.error(key, f"off the page ({label} + {extent} = {_num(end)}{unit} "
                                      f"> {_num(limit)}{unit})")
        if fractions:
            x, w = x * _exact(size[0]), w * _exact(size[0])
            y, h = y * _exact(size[1]), h * _exact(size[1])
        return float(x), float(y), float(w), float(h)

    def field(self, data: Any, key: str, size: tuple[float, float]) -> Field:
        field = self.mapping(data, key, FIELD_KEYS, ("name",))
        name = field["name"]
        if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
            raise self.error(f"{key}.name", "expected a column name (letters, digits and _), "
                                            f"got {_show(name)}")
        if name in CSV_OWN_COLUMNS:
            raise self.error(f"{key}.name", f"'{name}' is one of the forms CSV's own columns "
                                            f"({', '.join(CSV_OWN_COLUMNS)})")
        box = self.box(field, key, size)
        digits = field.get("digits")
        if digits is not None and (isinstance(digits, bool) or not isinstance(digits, int)
                                   or digits < 1):
            raise self.error(f"{key}.digits", f"expected an integer >= 1, got {_show(digits)}")
        pattern = field.get("pattern")
        if pattern is not None:
            if not isinstance(pattern, str):
                raise self.error(f"{key}.pattern",
                                 f"expected a regular expression, got {_show(pattern)}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise self.error(f"{key}.pattern",
                                 f"not a valid regular expression: {one_line(exc)}") from None
        required = field.get("required", False)
        if not isinstance(required, bool):
            raise self.error(f"{key}.required", f"expected true or false, got {_show(required)}")
        return Field(name, box, digits, pattern, required)

    def template(self, data: Any) -> Template:
        if not isinstance(data, dict):
            raise self.error("", "top level must be a mapping of keys to values, "
                                 f"got {_show(data)}")
        top = self.mapping(data, "", TOP_KEYS, ("form", "fields"))
        name = top["form"]
        if not isinstance(name, str) or not FORM_NAME.fullmatch(name):
            raise self.error("form", "expected a name (letters, digits, - and _), "
                                     f"got {_show(name)}")
        size = self.size(top.get("page"))
        listed = top["fields"]
        if not isinstance(listed, list):
            raise self.error("fields", f"expected a list of fields, got {_show(listed)}")
        if not listed:
            raise self.error("fields", "empty; a form needs at least one field")
        fields: list[Field] = []
        for i, item in enumerate(listed):
            key = f"fields[{i}]"
            field = self.field(item, key, size)
            for j, other in enumerate(fields):
                if other.name == field.name:
                    raise self.error(f"{key}.name", f"'{field.name}' is already the name of "
                                                    f"fields[{j}]")
            box_key = f"{key}.{'box' if 'box' in item else 'box_mm'}"
            for j, other in enumerate(fields):
                if overlap(field.box, other.box):
                    raise self.error(box_key, f"field '{field.name}' overlaps field "
                                              f"'{other.name}' (fields[{j}])")
            fields.append(field)
        return Template(name, size, tuple(fields), self.source)


def overlap(a: Box, b: Box) -> bool:
    """True when two boxes share some area (boxes that only touch do not)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def load_template(path: str | Path) -> Template:
    """Read and validate one template file; :class:`FormError` names the file and key."""
    source = str(path)
    data = _read(Path(path), source)
    return _Checker(source).template(data)


def load_forms(folder: str | Path) -> tuple[Template, ...]:
    """Every template (``*.yaml``, ``*.yml``; not hidden, not in sub-folders) in ``folder``,
    sorted by file name.

    Raises :class:`FormError` for a bad template, two templates with one form
    name, a missing folder, or a folder with no templates.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "folder not found"
        raise FormError(f"{folder}: {what}")
    try:
        names = sorted(p.name for p in folder.iterdir()
                       if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")
                       and not p.is_dir())
    except OSError as exc:
        raise FormError(f"{folder}: cannot list the folder: {os_words(exc)}") from None
    if not names:
        raise FormError(f"{folder}: no form templates (*.yaml, *.yml) in the folder")
    templates: list[Template] = []
    for name in names:
        template = load_template(folder / name)
        for other in templates:
            if other.name == template.name:
                raise FormError(f"{template.path}: form: '{template.name}' is already the "
                                f"name of {other.path}")
        templates.append(template)
    return tuple(templates)


def dump_template(template: Template) -> str:
    """The template as the YAML :func:`load_template` reads (boxes in mm)."""
    lines = [f"form: {template.name}",
             f"page: {{width_mm: {_num(template.size[0])}, height_mm: {_num(template.size[1])}}}",
             "fields:"]
    for field in template.fields:
        lines += [f"  - name: {field.name}",
                  f"    box_mm: [{', '.join(_num(v) for v in field.box)}]"]
        if field.digits is not None:
            lines.append(f"    digits: {field.digits}")
        if field.pattern is not None:
            lines.append(f"    pattern: {json.dumps(field.pattern)}")  # JSON's strings are YAML's
        if field.required:
            lines.append("    required: true")
    return "\n".join(lines) + "\n"
