"""The real `digitd` console script: help, exit codes, and exact error lines.

Most tests run the installed script as a subprocess against tmp_path (see the
`run_digitd` fixture in conftest.py); the error handler's branches that need
an impossible situation (a crash, a model error) are driven in-process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import clean_env
from digitd import __version__, cli
from digitd.config import KEYS, load_config
from digitd.errors import ConfigError, InputsFailed, ModelLoadError, UsageError

SUBCOMMANDS = ["run", "predict", "check-config", "template"]
# Arguments that make each subcommand runnable (besides --config).
EXTRA_ARGS = {"run": [], "predict": ["some.png"], "check-config": [], "template": ["blank.png"]}


def squash(text: str) -> str:
    return " ".join(text.split())


def subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def make_config(folder: Path, text: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def make_world(folder: Path) -> Path:
    """A valid config whose inbox, outbox and model all exist."""
    (folder / "inbox").mkdir(parents=True)
    (folder / "outbox").mkdir()
    (folder / "m.keras").write_bytes(b"")
    return make_config(folder, "model: m.keras\n")


# --- help and version -------------------------------------------------------------


def test_help(run_digitd):
    result = run_digitd("--help")
    assert result.returncode == 0, result.stderr
    assert squash(cli.build_parser().description) in squash(result.stdout)
    for name in SUBCOMMANDS:
        assert name in result.stdout
    assert result.stderr == ""


def test_version(run_digitd):
    result = run_digitd("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"digitd {__version__}\n", "")


def test_version_matches_pyproject(repo_root):
    import tomllib

    meta = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["version"] == __version__


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(run_digitd, name):
    result = run_digitd(name, "--help")
    assert result.returncode == 0, result.stderr
    description = subparsers(cli.build_parser()).choices[name].description
    assert squash(description) in squash(result.stdout)
    assert result.stdout.startswith(f"usage: digitd {name}")


def test_every_subcommand_and_option_has_help():
    """Fails when a command or option is added without help text (or without a test)."""
    parser = cli.build_parser()
    action = subparsers(parser)
    assert sorted(action.choices) == sorted(SUBCOMMANDS), "add new commands to SUBCOMMANDS"
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    for name, sub in action.choices.items():
        assert helps.get(name), f"'{name}' has no help line in 'digitd --help'"
        assert sub.description and len(sub.description) > 20, f"'{name}' has no description"
        for option in sub._actions:
            assert option.help, f"'{name}' option {option.option_strings or option.dest} lacks help"
    for option in parser._actions:
        assert option.help, f"option {option.option_strings} lacks help"


def test_python_dash_m_is_the_console_script(run_digitd, tmp_path):
    via_script = run_digitd("--help")
    via_module = subprocess.run([sys.executable, "-m", "digitd", "--help"], cwd=tmp_path,
                                env=clean_env(), capture_output=True, text=True, timeout=60)
    assert via_module.returncode == 0
    assert via_module.stdout == via_script.stdout


def test_cli_and_config_import_nothing_heavy(tmp_path):
    """--help and check-config must stay instant: no TensorFlow, Keras, OpenCV, matplotlib."""
    config = make_world(tmp_path)
    code = (
        "import sys, contextlib, io\n"
        "from digitd.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['check-config', '--config', {str(config)!r}]) == 0\n"
        "    assert main(['--help']) == 0\n"
        "heavy = {'tensorflow', 'keras', 'cv2', 'matplotlib', 'watchdog'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


# --- check-config -------------------------------------------------------------------


def test_check_config_prints_the_shipped_config(run_digitd, repo_root):
    config = repo_root / "config.yaml"
    result = run_digitd("check-config", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# effective config from {config}\n")
    assert yaml.safe_load(result.stdout) == load_config(config).as_dict()
    for line in result.stderr.splitlines():  # the model may not be trained yet
        assert line.startswith("digitd: warning: "), line


def test_check_config_quiet_when_everything_exists(run_digitd, tmp_path):
    config = make_world(tmp_path)
    result = run_digitd("check-config", "--config", config)
    assert (result.returncode, result.stderr) == (0, "")
    printed = yaml.safe_load(result.stdout)
    assert list(printed) == [s.name for s in KEYS]
    assert printed["inbox"] == str(tmp_path / "inbox")
    assert printed["model"] == str(tmp_path / "m.keras")


def test_check_config_warns_about_missing_folders_and_model(run_digitd, tmp_path):
    config = make_config(tmp_path / "conf", "inbox: ../in\noutbox: ../out\n")
    result = run_digitd("check-config", "--config", config)
    assert result.returncode == 0
    assert result.stderr == (
        f"digitd: warning: inbox folder {tmp_path}/in does not exist (key 'inbox' in {config})\n"
        f"digitd: warning: outbox folder {tmp_path}/out does not exist (key 'outbox' in {config})\n"
        f"digitd: warning: model file {tmp_path}/conf/models/digitd-cnn-v8.keras does not exist "
        f"(key 'model' in {config})\n")


def test_config_from_current_directory_by_default(run_digitd, tmp_path):
    make_world(tmp_path)
    result = run_digitd("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# effective config from {tmp_path / 'config.yaml'}\n")


def test_config_from_environment(run_digitd, tmp_path):
    config = make_world(tmp_path / "site")
    result = run_digitd("check-config", env={"DIGITD_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# effective config from {config}\n")


def test_config_option_beats_environment(run_digitd, tmp_path):
    config = make_world(tmp_path / "site")
    result = run_digitd("check-config", "--config", config,
                        env={"DIGITD_CONFIG": str(tmp_path / "nope.yaml")})
    assert result.returncode == 0, result.stderr


# --- config errors: exit 2 and one exact line, for every command --------------------

# One wrong value per key, and how the message shows it.
CLI_BAD = {
    "inbox": ("3", "a path", "3"),
    "outbox": ("''", "a path", "''"),
    "model": ("[m.keras]", "a path", "a list"),
    "forms": ("[forms]", "a path, or nothing for none", "a list"),
    "recursive": ("'yes'", "true or false", "'yes'"),
    "polling": ("1", "true or false", "1"),
    "poll_interval_seconds": ("0", "a number > 0", "0"),
    "settle_seconds": ("-1", "a number >= 0", "-1"),
    "rescan_seconds": ("true", "a number > 0", "true"),
    "batch_max": ("abc", "an integer >= 1", "'abc'"),
    "batch_wait_ms": ("2.5", "an integer >= 0", "2.5"),
    "on_success": ("move", "one of 'archive', 'delete'", "'move'"),
    "confidence_threshold": ("1.5", "a number from 0 to 1", "1.5"),
    "number_confidence": ("mean", "one of 'min', 'product'", "'mean'"),
    "annotate": ("'false'", "true or false", "'false'"),
    "max_file_mb": ("-5", "a number > 0", "-5"),
    "max_image_pixels": ("false", "an integer >= 1", "false"),
    "max_digits": ("0", "an integer >= 1", "0"),
    "pdf_dpi": ("10", "a number from 50 to 600", "10"),
    "max_pages": ("0", "an integer >= 1", "0"),
    "max_document_seconds": ("-1", "a number > 0", "-1"),
    "retry_max_attempts": ("", "an integer >= 1", "null"),
    "retry_backoff_seconds": (".nan", "a number > 0", "nan"),
    "status_interval_seconds": ("'5'", "a number > 0", "'5'"),
    "log_level": ("verbose", "one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'", "'verbose'"),
}


def test_cli_cases_cover_every_key():
    assert list(CLI_BAD) == [s.name for s in KEYS]


@pytest.mark.parametrize("key", list(CLI_BAD))
def test_bad_key_check_config(run_digitd, tmp_path, key):
    text, expected, shown = CLI_BAD[key]
    config = make_config(tmp_path, f"{key}: {text}\n")
    result = run_digitd("check-config", "--config", config)
    assert result.returncode == 2
    assert result.stderr == f"digitd: error: {config}: key '{key}': expected {expected}, got {shown}\n"
    assert result.stdout == ""


@pytest.mark.parametrize("command", SUBCOMMANDS)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch_max: abc\n", "key 'batch_max': expected an integer >= 1, got 'abc'"),
        ("batchmax: 3\n", "unknown key 'batchmax' (did you mean 'batch_max'?)"),
        ("inbox: in\noutbox: in/out\n",
         "key 'outbox': {dir}/in/out is inside the inbox {dir}/in; results would be read back as inputs"),
        ("- a\n", "top level must be a mapping of keys to values, got a list"),
    ],
    ids=["wrong-type", "unknown-key", "outbox-in-inbox", "not-a-mapping"],
)
def test_every_command_refuses_a_bad_config(run_digitd, tmp_path, command, text, message):
    config = make_config(tmp_path, text)
    result = run_digitd(command, "--config", config, *EXTRA_ARGS[command])
    assert result.returncode == 2
    assert result.stderr == f"digitd: error: {config}: {message.format(dir=tmp_path)}\n"


def test_missing_default_config(run_digitd, tmp_path):
    """Only the service needs a config file; predict and check-config take the
    defaults and the shipped model (tests/test_lean.py)."""
    result = run_digitd("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"digitd: error: config.yaml: config file not found (looked for {tmp_path}/config.yaml)\n")


def test_missing_config_from_environment(run_digitd, tmp_path):
    missing = tmp_path / "etc" / "digitd.yaml"
    result = run_digitd("check-config", env={"DIGITD_CONFIG": str(missing)})
    assert result.returncode == 2
    assert result.stderr == f"digitd: error: {missing}: config file not found\n"


def test_yaml_syntax_error_is_one_line(run_digitd, tmp_path):
    config = make_config(tmp_path, "inbox: [unclosed\n")
    result = run_digitd("check-config", "--config", config)
    assert result.returncode == 2
    assert result.stderr.startswith(f"digitd: error: {config}: invalid YAML at line 2, column 1: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


# --- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["predict"], "the following arguments are required: PATH"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["check-config", "--config"], "argument --config: expected one argument"),
    ],
    ids=["no-command", "unknown-command", "predict-no-path", "unknown-option", "config-no-value"],
)
def test_usage_errors_exit_2(run_digitd, args, fragment):
    result = run_digitd(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: digitd")
    assert fragment in result.stderr
    assert result.stdout == ""


# --- the error handler, in-process --------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InputsFailed("2 of 5 inputs failed"), 1),
        (ConfigError("c.yaml: key 'x': bad"), 2),
        (UsageError("no such thing"), 2),
        (ModelLoadError("model file /m.keras: not a Keras model"), 3),
    ],
)
def test_digitd_errors_become_exit_codes(monkeypatch, capsys, error, code):
    def fail(args):
        raise error

    monkeypatch.delenv("DIGITD_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_check_config", fail)
    assert cli.main(["check-config"]) == code
    captured = capsys.readouterr()
    assert captured.err == f"digitd: error: {error.message}\n"
    assert captured.out == ""


def test_error_messages_are_one_line():
    assert str(ConfigError("a\nb\r\n  c")) == "a b c"
    assert str(ConfigError("keep  inner   spaces")) == "keep  inner   spaces"


def crash(args):
    raise RuntimeError("something\nbroke")


def test_crash_is_one_line_exit_70(monkeypatch, capsys):
    monkeypatch.delenv("DIGITD_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_check_config", crash)
    assert cli.main(["check-config"]) == 70
    assert capsys.readouterr().err == "digitd: crashed: RuntimeError: something broke\n"


def test_crash_traceback_with_debug(monkeypatch, capsys):
    monkeypatch.setenv("DIGITD_DEBUG", "1")
    monkeypatch.setattr(cli, "cmd_check_config", crash)
    assert cli.main(["check-config"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("digitd: crashed: RuntimeError: something broke\n")


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_check_config", interrupted)
    assert cli.main(["check-config"]) == 130
    assert capsys.readouterr().err == "digitd: interrupted\n"


# --- run and predict hand the (overridden) config to their implementation ----------------


@pytest.fixture
def fake_impl(monkeypatch):
    calls = []

    import digitd.predict
    import digitd.service

    def implementation(command):
        def fake(config, *rest):
            calls.append((command, config, rest))
            return len(calls) - 1 if command == "predict" else None
        return fake

    monkeypatch.setattr(digitd.service, "run", implementation("run"))
    monkeypatch.setattr(digitd.predict, "main", implementation("predict"))
    return calls


def test_run_gets_the_config(tmp_path, fake_impl):
    config = make_world(tmp_path)
    assert cli.main(["run", "--config", str(config)]) == 0
    [(command, got, rest)] = fake_impl
    assert command == "run" and rest == () and got == load_config(config)


def test_predict_applies_command_line_overrides(tmp_path, monkeypatch, fake_impl):
    config = make_world(tmp_path / "site")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["predict", "--config", str(config), "--model", "other.keras",
                     "--out", "results", "--no-annotate", "--json", "a.png", "dir"]) == 0
    [(command, got, (args,))] = fake_impl
    assert command == "predict"
    assert got.model == tmp_path / "other.keras"  # relative to cwd, not the config
    assert got.outbox == tmp_path / "results"
    assert got.annotate is False
    assert got.inbox == tmp_path / "site" / "inbox"
    assert args.json is True and args.paths == ["a.png", "dir"]


def test_predict_without_overrides_keeps_the_config(tmp_path, fake_impl):
    config = make_world(tmp_path)
    assert cli.main(["predict", "--config", str(config), "x.png"]) == 0
    assert cli.main(["predict", "--config", str(config), "x.png"]) == 1  # its return code
    assert fake_impl[0][1] == load_config(config)
