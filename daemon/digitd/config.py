"""The one typed, frozen configuration of digitd, and its loader.

:func:`load_config` reads a YAML file into a :class:`Config`, or raises
:class:`~digitd.errors.ConfigError` (exit 2) with one line naming the file and
the key. :data:`KEYS` is the single source of truth for every key's name,
type, default, limits and documentation. The rules are in docs/DESIGN.md
("Config"). Imports nothing heavy, so ``digitd check-config`` is instant.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from digitd.errors import ConfigError
from digitd.forms import FormError, Template, load_forms
from digitd.yamltext import YAMLTextError, parse_yaml

DEFAULT_CONFIG_NAME = "config.yaml"
CONFIG_ENV = "DIGITD_CONFIG"
# The model shipped inside the package (package data): served when there is no config file.
PACKAGED_MODEL = Path(__file__).resolve().parent / "models" / "digitd-cnn-v8.tflite"


@dataclass(frozen=True)
class KeySpec:
    """Name, type, default, limits and meaning of one config key."""

    name: str
    kind: Literal["path", "bool", "int", "float", "choice"]
    default: Any
    doc: str
    low: float | None = None  # lower limit, if any
    low_inclusive: bool = True
    high: float | None = None  # upper limit (inclusive), if any
    choices: tuple[str, ...] = ()
    optional: bool = False  # null or '' means none (a path key only)

    def expectation(self) -> str:
        """What a valid value looks like, as used in error messages."""
        if self.kind == "path":
            return "a path, or nothing for none" if self.optional else "a path"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} from {_num(self.low)} to {_num(self.high)}"
        if self.low is not None:
            op = ">=" if self.low_inclusive else ">"
            return f"{noun} {op} {_num(self.low)}"
        return noun

    def type_name(self) -> str:
        """Short type description for documentation tables."""
        if self.kind == "choice":
            return " \\| ".join(f"`{c}`" for c in self.choices)
        if self.kind == "path" and self.optional:
            return "path or empty"
        return {"path": "path", "bool": "bool", "int": "int", "float": "float"}[self.kind]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


KEYS: tuple[KeySpec, ...] = (
    KeySpec("inbox", "path", "inbox",
            "Folder watched for new images (PNG, JPEG, TIFF, BMP, WebP)."),
    KeySpec("outbox", "path", "outbox",
            "Folder the results go to: results/, annotated/, originals/, failed/, results.csv."),
    KeySpec("model", "path", "models/digitd-cnn-v8.keras",
            "Model file: NAME.keras, served from its NAME.tflite companion, or a .tflite itself."),
    KeySpec("forms", "path", None,
            "Folder of form templates (*.yaml), read and checked at start; empty: no forms.",
            optional=True),
    KeySpec("recursive", "bool", False,
            "Also watch the inbox's subfolders."),
    KeySpec("polling", "bool", False,
            "Look for files by polling instead of inotify events (for network shares)."),
    KeySpec("poll_interval_seconds", "float", 2.0,
            "How often the inbox is polled when polling is true.", low=0, low_inclusive=False),
    KeySpec("settle_seconds", "float", 1.0,
            "A file whose size and mtime stay unchanged this long counts as completely written.",
            low=0),
    KeySpec("rescan_seconds", "float", 60.0,
            "Full rescan of the inbox every this many seconds, as a safety net for missed events.",
            low=0, low_inclusive=False),
    KeySpec("batch_max", "int", 256,
            "Most images recognised in one model call (micro-batch size).", low=1),
    KeySpec("batch_wait_ms", "int", 50,
            "How long to wait for more ready files to fill a batch, in milliseconds.", low=0),
    KeySpec("on_success", "choice", "archive",
            "What happens to an original after success: archive (move to outbox/originals/) "
            "or delete.", choices=("archive", "delete")),
    KeySpec("confidence_threshold", "float", 0.80,
            "A reading whose confidence is below this gets status 'uncertain'.", low=0, high=1),
    KeySpec("number_confidence", "choice", "min",
            "How a multi-digit number's confidence is made from its digits' confidences: "
            "min (the weakest digit) or product.", choices=("min", "product")),
    KeySpec("annotate", "bool", True,
            "Write the annotated picture outbox/annotated/NAME.png for each input."),
    KeySpec("max_file_mb", "float", 50.0,
            "Input files larger than this many megabytes are refused (moved to failed/).",
            low=0, low_inclusive=False),
    KeySpec("max_image_pixels", "int", 40_000_000,
            "Decoded images with more pixels than this are refused (decompression bombs).",
            low=1),
    KeySpec("max_digits", "int", 12,
            "Most digits read from one image.", low=1),
    KeySpec("pdf_dpi", "float", 200.0,
            "Resolution a PDF's pages are rasterised at (dots per inch).", low=50, high=600),
    KeySpec("max_pages", "int", 50,
            "Most pages read from one document (PDF or multi-page TIFF); more is refused.", low=1),
    KeySpec("max_document_seconds", "float", 60.0,
            "Longest a document may take to read (decode and find numbers); longer is refused.",
            low=0, low_inclusive=False),
    KeySpec("retry_max_attempts", "int", 5,
            "Attempts for transient errors (disk full, permission) before a file is failed.",
            low=1),
    KeySpec("retry_backoff_seconds", "float", 2.0,
            "Wait before the first retry; doubled after each further attempt.",
            low=0, low_inclusive=False),
    KeySpec("status_interval_seconds", "float", 5.0,
            "How often the service reports its counts (systemd STATUS= and a log line).",
            low=0, low_inclusive=False),
    KeySpec("log_level", "choice", "INFO",
            "Least severe log messages shown on stderr.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)

KEY_SPECS: dict[str, KeySpec] = {spec.name: spec for spec in KEYS}


@dataclass(frozen=True)
class Config:
    """The effective configuration. Paths are absolute. See :data:`KEYS`."""

    inbox: Path
    outbox: Path
    model: Path
    forms: Path | None
    recursive: bool
    polling: bool
    poll_interval_seconds: float
    settle_seconds: float
    rescan_seconds: float
    batch_max: int
    batch_wait_ms: int
    on_success: Literal["archive", "delete"]
    confidence_threshold: float
    number_confidence: Literal["min", "product"]
    annotate: bool
    max_file_mb: float
    max_image_pixels: int
    max_digits: int
    pdf_dpi: float
    max_pages: int
    max_document_seconds: float
    retry_max_attempts: int
    retry_backoff_seconds: float
    status_interval_seconds: float
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    # The file this config was read from (absolute), or None. Not a key.
    source: Path | None = dataclasses.field(default=None, compare=False)
    # The form templates in the ``forms`` folder, loaded by load_config. Not a key.
    templates: tuple[Template, ...] = dataclasses.field(default=(), compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Every key and its value, in documentation order; paths as strings."""
        out: dict[str, Any] = {}
        for spec in KEYS:
            value = getattr(self, spec.name)
            out[spec.name] = str(value) if isinstance(value, Path) else value
        return out

    def replace(self, **changes: Any) -> Config:
        """A copy with some values changed (e.g. command-line overrides)."""
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------
# Choosing the config file


def config_path_from(cli_value: str | os.PathLike[str] | None,
                     environ: Mapping[str, str] | None = None) -> Path:
    """--config if given, else $DIGITD_CONFIG if set, else ./config.yaml."""
    if cli_value:
        return Path(cli_value)
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return Path(DEFAULT_CONFIG_NAME)


def implicit_config_missing(cli_value: str | os.PathLike[str] | None,
                            environ: Mapping[str, str] | None = None) -> bool:
    """True when no config file was named (no --config, no $DIGITD_CONFIG) and
    ./config.yaml does not exist: the commands that can then use :func:`default_config`."""
    env = os.environ if environ is None else environ
    return not cli_value and not env.get(CONFIG_ENV) and not Path(DEFAULT_CONFIG_NAME).exists()


def default_config(base_dir: str | os.PathLike[str] = ".") -> Config:
    """The config with every key at its default (relative paths from ``base_dir``)
    and the model shipped with the package (:data:`PACKAGED_MODEL`); ``source`` None."""
    return parse_config({}, "defaults", Path(base_dir)).replace(model=PACKAGED_MODEL)


# ---------------------------------------------------------------------------
# Reading YAML


def _read_yaml(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
        raise ConfigError(f"{source}: config file not found{where}") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{source}: cannot read config file: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from None
    try:
        return parse_yaml(text, _show_key)
    except YAMLTextError as exc:
        raise ConfigError(f"{source}: {exc}") from None


# ---------------------------------------------------------------------------
# Validation (pure: no file system access except path normalisation)


def _show(value: Any) -> str:
    """A value as it would appear in YAML, for error messages (one line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return f"a date ({value})"
    return f"a {type(value).__name__}"


def _show_key(key: Any) -> str:
    return repr(key) if isinstance(key, str) else _show(key)


def _in_range(spec: KeySpec, x: float) -> bool:
    if not math.isfinite(x):
        return False
    if spec.low is not None and (x < spec.low or (x == spec.low and not spec.low_inclusive)):
        return False
    return spec.high is None or x <= spec.high


def _check_value(spec: KeySpec, value: Any, source: str, base_dir: Path) -> Any:
    """The validated, normalised value, or ConfigError naming key and file."""

    def bad() -> ConfigError:
        return ConfigError(
            f"{source}: key '{spec.name}': expected {spec.expectation()}, got {_show(value)}")

    if spec.kind == "path":
        if spec.optional and (value is None or value == ""):
            return None
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise bad()
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = base_dir / path
        return Path(os.path.normpath(path))
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not _in_range(spec, value):
            raise bad()
        return value
    if spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        if not _in_range(spec, float(value)):
            raise bad()
        return float(value)
    if spec.kind == "choice":
        if isinstance(value, str):
            for choice in spec.choices:  # case-insensitive, stored canonical
                if value.lower() == choice.lower():
                    return choice
        raise bad()
    raise AssertionError(f"unknown kind {spec.kind!r}")  # pragma: no cover


def _check_folders(inbox: Path, outbox: Path, source: str) -> None:
    real_in, real_out = inbox.resolve(), outbox.resolve()  # sees through symlinks
    if real_in == real_out:
        raise ConfigError(
            f"{source}: key 'outbox': must be a different folder from the inbox ({inbox})")
    if real_out.is_relative_to(real_in):
        raise ConfigError(
            f"{source}: key 'outbox': {outbox} is inside the inbox {inbox}; "
            "results would be read back as inputs")
    if real_in.is_relative_to(real_out):
        raise ConfigError(f"{source}: key 'inbox': {inbox} is inside the outbox {outbox}")


def parse_config(data: Any, source: str, base_dir: Path) -> Config:
    """Validate parsed YAML ``data`` (None = empty file) into a :class:`Config`.

    ``source`` names the file in messages; relative paths resolve from
    ``base_dir`` (made absolute from the current directory if needed).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: top level must be a mapping of keys to values, got {_show(data)}")
    for key in data:
        if key not in KEY_SPECS:
            hint = ""
            if isinstance(key, str):
                close = difflib.get_close_matches(key, KEY_SPECS, n=1)
                if close:
                    hint = f" (did you mean '{close[0]}'?)"
            raise ConfigError(f"{source}: unknown key {_show_key(key)}{hint}")
    base_dir = Path(os.path.abspath(base_dir))
    values = {
        spec.name: _check_value(spec, data.get(spec.name, spec.default), source, base_dir)
        for spec in KEYS
    }
    _check_folders(values["inbox"], values["outbox"], source)
    return Config(**values)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML config file at ``path``.

    Raises ConfigError (exit 2) with one line naming the file (as given) and
    the key. Relative paths in the file resolve from the file's folder. With
    ``forms`` set, the templates there are loaded and checked too.
    """
    path = Path(path)
    source = str(path)
    data = _read_yaml(path, source)
    config = parse_config(data, source, path.absolute().parent)
    templates: tuple[Template, ...] = ()
    if config.forms is not None:
        try:
            templates = load_forms(config.forms)
        except FormError as exc:
            raise ConfigError(f"{source}: key 'forms': {exc}") from None
    return config.replace(source=Path(os.path.abspath(path)), templates=templates)


def existence_warnings(config: Config) -> list[str]:
    """Human-readable problems with the configured folders and model file."""
    where = f" in {config.source}" if config.source else ""
    out: list[str] = []
    for key in ("inbox", "outbox"):
        path: Path = getattr(config, key)
        if not path.exists():
            out.append(f"{key} folder {path} does not exist (key '{key}'{where})")
        elif not path.is_dir():
            out.append(f"{key} {path} is not a folder (key '{key}'{where})")
    if not config.model.exists():
        out.append(f"model file {config.model} does not exist (key 'model'{where})")
    elif not config.model.is_file():
        out.append(f"model {config.model} is not a file (key 'model'{where})")
    return out
