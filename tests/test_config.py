"""digitd.config: every key's type and limits, defaults, paths, and file errors."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml
from digitd.config import (
    CONFIG_ENV,
    KEYS,
    Config,
    config_path_from,
    existence_warnings,
    load_config,
    parse_config,
)
from digitd.errors import ConfigError

# What every key accepts, in the exact words of the error message.
EXPECTED = {
    "inbox": "a path",
    "outbox": "a path",
    "model": "a path",
    "forms": "a path, or nothing for none",
    "recursive": "true or false",
    "polling": "true or false",
    "poll_interval_seconds": "a number > 0",
    "settle_seconds": "a number >= 0",
    "rescan_seconds": "a number > 0",
    "batch_max": "an integer >= 1",
    "batch_wait_ms": "an integer >= 0",
    "on_success": "one of 'archive', 'delete'",
    "confidence_threshold": "a number from 0 to 1",
    "number_confidence": "one of 'min', 'product'",
    "annotate": "true or false",
    "max_file_mb": "a number > 0",
    "max_image_pixels": "an integer >= 1",
    "max_digits": "an integer >= 1",
    "pdf_dpi": "a number from 50 to 600",
    "max_pages": "an integer >= 1",
    "max_document_seconds": "a number > 0",
    "retry_max_attempts": "an integer >= 1",
    "retry_backoff_seconds": "a number > 0",
    "status_interval_seconds": "a number > 0",
    "log_level": "one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'",
}

DEFAULTS = {
    "inbox": "inbox",  # relative to the config file's folder
    "outbox": "outbox",
    "model": "models/digitd-cnn-v8.keras",
    "forms": None,  # no forms
    "recursive": False,
    "polling": False,
    "poll_interval_seconds": 2.0,
    "settle_seconds": 1.0,
    "rescan_seconds": 60.0,
    "batch_max": 256,
    "batch_wait_ms": 50,
    "on_success": "archive",
    "confidence_threshold": 0.80,
    "number_confidence": "min",
    "annotate": True,
    "max_file_mb": 50.0,
    "max_image_pixels": 40_000_000,
    "max_digits": 12,
    "pdf_dpi": 200.0,
    "max_pages": 50,
    "max_document_seconds": 60.0,
    "retry_max_attempts": 5,
    "retry_backoff_seconds": 2.0,
    "status_interval_seconds": 5.0,
    "log_level": "INFO",
}
PATH_KEYS = ("inbox", "outbox", "model")

# Bad values as written in YAML -> how the message shows them. Wrong types first,
# then impossible values for the key's kind.
WRONG_ANY = {"[1, 2]": "a list", "{a: 1}": "a mapping", "": "null", "2024-01-02": "a date (2024-01-02)"}
BAD_BY_KEY: dict[str, dict[str, str]] = {
    **{k: {"3": "3", "''": "''", "'   '": "'   '", "true": "true"} for k in PATH_KEYS},
    "forms": {"3": "3", "'   '": "'   '", "true": "true", "[forms]": "a list"},
    **{k: {"'yes'": "'yes'", "'true'": "'true'", "1": "1", "0": "0", "on_off": "'on_off'"}
       for k in ("recursive", "polling", "annotate")},
    **{k: {"abc": "'abc'", "0": "0", "0.0": "0.0", "-1.5": "-1.5", "true": "true",
           ".inf": "inf", ".nan": "nan", "'2'": "'2'"}
       for k in ("poll_interval_seconds", "rescan_seconds", "max_file_mb",
                 "retry_backoff_seconds", "status_interval_seconds")},
    "settle_seconds": {"abc": "'abc'", "-0.1": "-0.1", "-1": "-1", "false": "false", ".inf": "inf"},
    "confidence_threshold": {"1.5": "1.5", "-0.1": "-0.1", "2": "2", "high": "'high'",
                             "true": "true", "'0.8'": "'0.8'", "80%": "'80%'"},
    **{k: {"abc": "'abc'", "0": "0", "-3": "-3", "2.5": "2.5", "1.0": "1.0", "true": "true",
           "'5'": "'5'"}
       for k in ("batch_max", "max_image_pixels", "max_digits", "max_pages", "retry_max_attempts")},
    "pdf_dpi": {"49": "49", "601": "601", "abc": "'abc'", "true": "true"},
    "max_document_seconds": {"0": "0", "-1": "-1", "abc": "'abc'", "false": "false"},
    "batch_wait_ms": {"-1": "-1", "0.5": "0.5", "true": "true", "fast": "'fast'"},
    "on_success": {"move": "'move'", "true": "true", "3": "3", "'archive '": "'archive '"},
    "number_confidence": {"mean": "'mean'", "max": "'max'", "0": "0"},
    "log_level": {"verbose": "'verbose'", "warn": "'warn'", "10": "10", "false": "false"},
}
OPTIONAL_KEYS = ("forms",)  # null (and '') means none
BAD_CASES = [
    pytest.param(key, text, shown, id=f"{key}={text or 'null'}")
    for key in EXPECTED
    for text, shown in {**BAD_BY_KEY[key], **WRONG_ANY}.items()
    if not (key in OPTIONAL_KEYS and text == "")
]


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the table of keys ---------------------------------------------------------


def test_keys_table_matches_the_dataclass():
    fields = [f.name for f in dataclasses.fields(Config) if f.name not in ("source", "templates")]
    assert [spec.name for spec in KEYS] == fields
    assert list(EXPECTED) == fields and list(DEFAULTS) == fields
    assert set(BAD_BY_KEY) == set(fields), "every key needs bad-value cases"


@pytest.mark.parametrize("spec", KEYS, ids=lambda s: s.name)
def test_every_key_is_documented_with_its_expectation(spec):
    assert spec.expectation() == EXPECTED[spec.name]
    assert spec.doc.strip().endswith(".")
    assert spec.default == DEFAULTS[spec.name]


# --- bad values ------------------------------------------------------------------


@pytest.mark.parametrize(("key", "text", "shown"), BAD_CASES)
def test_bad_value_is_refused_naming_key_and_file(tmp_path, key, text, shown):
    path = write(tmp_path, f"{key}: {text}\n")
    assert config_error(path) == f"{path}: key '{key}': expected {EXPECTED[key]}, got {shown}"


def test_first_bad_key_in_documentation_order_is_reported(tmp_path):
    path = write(tmp_path, "log_level: loud\nbatch_max: 0\n")
    assert config_error(path) == f"{path}: key 'batch_max': expected an integer >= 1, got 0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batchmax: 3\n", "unknown key 'batchmax' (did you mean 'batch_max'?)"),
        ("inbx: in\n", "unknown key 'inbx' (did you mean 'inbox'?)"),
        ("frobnicate: 1\n", "unknown key 'frobnicate'"),
        ("1: x\n", "unknown key 1"),
        ("true: x\n", "unknown key true"),
        ("Inbox: in\n", "unknown key 'Inbox' (did you mean 'inbox'?)"),
    ],
)
def test_unknown_keys_are_refused(tmp_path, text, message):
    path = write(tmp_path, text)
    assert config_error(path) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [("- inbox\n- outbox\n", "a list"), ("hello\n", "'hello'"), ("42\n", "42")],
)
def test_top_level_must_be_a_mapping(tmp_path, text, shown):
    path = write(tmp_path, text)
    assert config_error(path) == (
        f"{path}: top level must be a mapping of keys to values, got {shown}")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("inbox: in\nbatch_max: [1, 2\n", "at line 3, column 1"),
        ("inbox: in\n  outbox: out\n", "at line 2, column 9"),
        ("inbox: 'unterminated\n", "at line 2, column 1"),
        ("\tinbox: in\n", "at line 1, column 1"),
    ],
)
def test_yaml_syntax_errors_are_one_line_with_position(tmp_path, text, where):
    path = write(tmp_path, text)
    assert config_error(path).startswith(f"{path}: invalid YAML {where}: ")


def test_duplicate_keys_are_refused(tmp_path):
    path = write(tmp_path, "batch_max: 8\ninbox: in\nbatch_max: 16\n")
    assert config_error(path) == f"{path}: key 'batch_max' appears twice (lines 1 and 3)"


def test_missing_file_absolute(tmp_path):
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"{path}: config file not found"


def test_missing_file_relative_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_error(Path("config.yaml")) == (
        f"config.yaml: config file not found (looked for {tmp_path / 'config.yaml'})")


def test_folder_instead_of_file(tmp_path):
    assert config_error(tmp_path) == f"{tmp_path}: is a folder, not a config file"


def test_not_utf8(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"inbox: \xff\xfe\n")
    assert config_error(path) == f"{path}: not UTF-8 text (byte 7)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "inbox: in\n")
    path.chmod(0)
    assert config_error(path) == f"{path}: cannot read config file: permission denied"


# --- good values -------------------------------------------------------------------


def expected_defaults(base: Path) -> dict:
    out = dict(DEFAULTS)
    for key in PATH_KEYS:
        out[key] = str(base / out[key])
    return out


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n", "---\n"])
def test_empty_file_gives_all_defaults(tmp_path, text):
    config = load_config(write(tmp_path, text))
    assert config.as_dict() == expected_defaults(tmp_path)
    assert config.source == tmp_path / "config.yaml"


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("rescan_seconds", "60", 60.0),  # an integer is a fine number
        ("rescan_seconds", "1e3", 1000.0),  # YAML 1.1 would read a string
        ("rescan_seconds", "1.5e-1", 0.15),
        ("max_file_mb", "0.001", 0.001),
        ("settle_seconds", "0", 0.0),
        ("confidence_threshold", "0", 0.0),
        ("confidence_threshold", "1", 1.0),
        ("confidence_threshold", "0.95", 0.95),
        ("batch_wait_ms", "0", 0),
        ("batch_max", "1", 1),
        ("max_image_pixels", "1_000_000", 1_000_000),
        ("recursive", "true", True),
        ("polling", "True", True),
        ("annotate", "false", False),
        ("on_success", "delete", "delete"),
        ("on_success", "Delete", "delete"),  # choices ignore case, stored canonical
        ("number_confidence", "product", "product"),
        ("log_level", "debug", "DEBUG"),
        ("log_level", "WARNING", "WARNING"),
        ("forms", "", None),
        ("forms", "''", None),
        ("forms", "null", None),
    ],
)
def test_good_values_are_accepted(tmp_path, key, text, value):
    config = load_config(write(tmp_path, f"{key}: {text}\n"))
    got = getattr(config, key)
    assert got == value and type(got) is type(value)


def test_optional_path_key_is_checked_like_a_path(tmp_path):
    spec = next(s for s in KEYS if s.name == "forms")
    assert spec.optional and spec.default is None and spec.type_name() == "path or empty"
    assert not any(s.optional for s in KEYS if s.name != "forms")


def test_float_keys_are_floats_and_int_keys_ints(tmp_path):
    config = load_config(write(tmp_path, ""))
    kinds = {"bool": bool, "int": int, "float": float, "choice": str}
    for spec in KEYS:
        value = getattr(config, spec.name)
        if spec.kind == "path" and spec.optional:
            assert value is None, spec.name
        elif spec.kind == "path":
            assert isinstance(value, Path) and value.is_absolute(), spec.name
        else:
            assert type(value) is kinds[spec.kind], spec.name


# --- paths ---------------------------------------------------------------------------


def test_relative_paths_resolve_from_the_config_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    folder = tmp_path / "etc" / "digitd"
    path = write(folder, "inbox: in\noutbox: ./data/../out/\nmodel: ../models/m.keras\n")
    config = load_config(path)
    assert config.inbox == folder / "in"
    assert config.outbox == folder / "out"
    assert config.model == tmp_path / "etc" / "models" / "m.keras"


def test_relative_config_path_is_relative_to_cwd(tmp_path, monkeypatch):
    write(tmp_path / "conf", "inbox: in\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/config.yaml")
    assert config.inbox == tmp_path / "conf" / "in"
    assert config.source == tmp_path / "conf" / "config.yaml"


def test_absolute_paths_are_kept(tmp_path):
    path = write(tmp_path / "c", f"inbox: {tmp_path / 'x' / 'in'}\nmodel: /opt/m.keras\n")
    config = load_config(path)
    assert config.inbox == tmp_path / "x" / "in"
    assert config.model == Path("/opt/m.keras")


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(write(tmp_path, "inbox: ~/scans\n"))
    assert config.inbox == tmp_path / "home" / "scans"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("inbox: in\noutbox: in/results\n",
         "key 'outbox': {base}/in/results is inside the inbox {base}/in; "
         "results would be read back as inputs"),
        ("inbox: in\noutbox: in/a/b/c\n",
         "key 'outbox': {base}/in/a/b/c is inside the inbox {base}/in; "
         "results would be read back as inputs"),
        ("inbox: out/in\noutbox: out\n", "key 'inbox': {base}/out/in is inside the outbox {base}/out"),
        ("inbox: data\noutbox: ./data/\n",
         "key 'outbox': must be a different folder from the inbox ({base}/data)"),
        ("inbox: a/../b\noutbox: b\n",
         "key 'outbox': must be a different folder from the inbox ({base}/b)"),
        # defaults are checked too
        ("outbox: inbox/out\n",
         "key 'outbox': {base}/inbox/out is inside the inbox {base}/inbox; "
         "results would be read back as inputs"),
        ("inbox: .\n",
         "key 'outbox': {base}/outbox is inside the inbox {base}; "
         "results would be read back as inputs"),
    ],
)
def test_inbox_and_outbox_must_not_overlap(tmp_path, text, message):
    path = write(tmp_path, text)
    assert config_error(path) == f"{path}: " + message.format(base=tmp_path)


def test_overlap_is_seen_through_symlinks(tmp_path):
    (tmp_path / "real-in").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real-in")
    path = write(tmp_path, "inbox: real-in\noutbox: link/out\n")
    assert config_error(path) == (
        f"{path}: key 'outbox': {tmp_path}/link/out is inside the inbox {tmp_path}/real-in; "
        "results would be read back as inputs")


@pytest.mark.parametrize(
    "text", ["inbox: in\noutbox: in2\n", "inbox: data/in\noutbox: data/in-results\n",
             "inbox: a/in\noutbox: b/out\n"])
def test_siblings_with_similar_names_are_fine(tmp_path, text):
    load_config(write(tmp_path, text))


# --- the config object -------------------------------------------------------------


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_max = 3  # type: ignore[misc]


def test_as_dict_round_trips_through_yaml(tmp_path):
    config = load_config(write(tmp_path, "batch_max: 7\n"))
    dumped = yaml.safe_dump(config.as_dict(), sort_keys=False)
    again = load_config(write(tmp_path / "again", dumped))
    assert again == config
    assert list(config.as_dict()) == [s.name for s in KEYS]
    assert all(isinstance(config.as_dict()[k], str) for k in PATH_KEYS)


def test_parse_config_without_a_file(tmp_path):
    config = parse_config({"batch_max": 4}, "test", tmp_path)
    assert config.batch_max == 4 and config.inbox == tmp_path / "inbox"
    assert config.source is None
    with pytest.raises(ConfigError, match=r"^test: key 'batch_max': "):
        parse_config({"batch_max": "x"}, "test", tmp_path)


def test_replace_makes_a_changed_copy(tmp_path):
    config = parse_config({}, "test", tmp_path)
    other = config.replace(annotate=False)
    assert other.annotate is False and config.annotate is True


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        ("given.yaml", {CONFIG_ENV: "env.yaml"}, "given.yaml"),
        (None, {CONFIG_ENV: "env.yaml"}, "env.yaml"),
        (None, {CONFIG_ENV: ""}, "config.yaml"),
        (None, {}, "config.yaml"),
    ],
)
def test_config_path_precedence(cli, env, expected):
    assert config_path_from(cli, env) == Path(expected)


def test_existence_warnings(tmp_path):
    path = write(tmp_path, "model: m.keras\n")
    config = load_config(path)
    assert existence_warnings(config) == [
        f"inbox folder {tmp_path}/inbox does not exist (key 'inbox' in {path})",
        f"outbox folder {tmp_path}/outbox does not exist (key 'outbox' in {path})",
        f"model file {tmp_path}/m.keras does not exist (key 'model' in {path})",
    ]
    (tmp_path / "inbox").mkdir()
    (tmp_path / "outbox").write_text("not a folder")
    (tmp_path / "m.keras").mkdir()
    assert existence_warnings(config) == [
        f"outbox {tmp_path}/outbox is not a folder (key 'outbox' in {path})",
        f"model {tmp_path}/m.keras is not a file (key 'model' in {path})",
    ]
    (tmp_path / "outbox").unlink()
    (tmp_path / "outbox").mkdir()
    (tmp_path / "m.keras").rmdir()
    (tmp_path / "m.keras").write_bytes(b"")
    assert existence_warnings(config) == []


# --- the shipped config.yaml and the README --------------------------------------------


def test_shipped_config_has_every_key_with_its_default(repo_root):
    path = repo_root / "config.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(raw) == [s.name for s in KEYS], "config.yaml lists every key, in order"
    assert load_config(path).as_dict() == expected_defaults(repo_root)


def test_shipped_config_comments_every_key(repo_root):
    lines = (repo_root / "config.yaml").read_text(encoding="utf-8").splitlines()
    for spec in KEYS:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{spec.name}:"))
        assert lines[index - 1].startswith("#"), f"{spec.name} has no comment above it"


def test_readme_documents_every_key(repo_root):
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    for spec in KEYS:
        assert f"| `{spec.name}` |" in readme, f"README's config table lacks {spec.name}"
