"""Command line: ``digitd run | predict | check-config | template``, a thin layer over the library.

It parses arguments, loads the config, calls the library, and turns errors
into exit codes in one place (:func:`main`): a
:class:`~digitd.errors.DigitdError` gives ``digitd: error: <message>`` and its
exit code, anything unexpected ``digitd: crashed: ...`` and 70. Heavy
libraries are imported only inside the commands that need them; serving never
imports TensorFlow. ``DIGITD_DEBUG_MODULES=1`` prints, at exit, one line
``digitd: modules: ...`` naming every top-level module loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from digitd import __version__
from digitd.errors import DigitdError, UsageError, one_line

EXIT_CRASH = 70  # EX_SOFTWARE: an internal error, not the user's fault
EXIT_INTERRUPTED = 130

DEBUG_ENV = "DIGITD_DEBUG"
MODULES_ENV = "DIGITD_DEBUG_MODULES"

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Commands


def _load(args: argparse.Namespace, *, defaults: bool = False):
    """The config named by --config, $DIGITD_CONFIG or ./config.yaml; with ``defaults``,
    when none of them is there, every default and the model shipped with digitd."""
    from digitd.config import config_path_from, default_config, implicit_config_missing, load_config

    if defaults and implicit_config_missing(args.config):
        return default_config()
    return load_config(config_path_from(args.config))


def _setup_logging(level: str) -> None:
    """Plain lines on stderr; journald adds the time."""
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    _setup_logging(config.log_level)
    from .service import run  # imported only now: it brings OpenCV and LiteRT in
    log.info("digitd %s starting with config %s", __version__, config.source)
    return int(run(config) or 0)


def cmd_predict(args: argparse.Namespace) -> int:
    config = _load(args, defaults=True)
    changes: dict[str, Any] = {}
    if args.model is not None:
        changes["model"] = Path(os.path.abspath(os.path.expanduser(args.model)))
    if args.out is not None:
        changes["outbox"] = Path(os.path.abspath(os.path.expanduser(args.out)))
    if args.no_annotate:
        changes["annotate"] = False
    if changes:
        config = config.replace(**changes)
    _setup_logging(config.log_level)
    from .predict import main as predict  # imported only now: it brings OpenCV and LiteRT in
    return int(predict(config, args) or 0)


def cmd_check_config(args: argparse.Namespace) -> int:
    import yaml

    from digitd.config import existence_warnings

    config = _load(args, defaults=True)
    for warning in existence_warnings(config):
        print(f"digitd: warning: {warning}", file=sys.stderr)
    sys.stdout.write(f"# effective config from {config.source}\n" if config.source else
                     "# effective config: the defaults (no config file), the model shipped with digitd\n")
    sys.stdout.write(yaml.safe_dump(config.as_dict(), sort_keys=False, default_flow_style=False))
    sys.stdout.flush()
    return 0


def cmd_template(args: argparse.Namespace) -> int:
    import re

    from .formats import InputError
    from .formread import draft_from_scan
    from .forms import FORM_NAME, dump_template
    from .imageio import pages, read_bytes

    config = _load(args, defaults=True)
    blank = Path(args.blank)
    name = args.name or re.sub(r"[^A-Za-z0-9_-]+", "-", blank.stem).strip("-") or "form"
    if not FORM_NAME.fullmatch(name):
        raise UsageError(f"--name {name!r}: letters, digits, - and _ only")
    out = Path(args.out) if args.out else Path(f"{name}.yaml")
    picture = out.with_name(f"{out.stem}.fields.png")
    for path in (out, picture):
        if path.exists() and not args.force:
            raise UsageError(f"{path} exists (--force to overwrite it)")
    try:
        page = next(iter(pages(read_bytes(blank, int(config.max_file_mb * 1e6)), config.max_image_pixels,
                               dpi=config.pdf_dpi, max_pages=config.max_pages)))
    except InputError as exc:
        raise UsageError(f"{blank}: {exc.reason}") from None
    except OSError as exc:
        raise UsageError(f"{blank}: cannot read it: {one_line(exc)}") from None
    if page.scan is None:
        raise UsageError(f"{blank}: page 1: {page.reason}")
    template, png = draft_from_scan(page.scan, name, page.dpi)
    if not template.fields:
        raise UsageError(f"{blank}: no printed boxes found on page 1 (fields need a box drawn "
                         "round them, at least 5 mm a side)")
    out.write_text(dump_template(template))
    picture.write_bytes(png)
    print(f"digitd: wrote {out} ({len(template.fields)} fields: "
          f"{', '.join(f.name for f in template.fields)}) and {picture}; rename the fields, "
          "then add digits, pattern and required where they apply", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# Parser


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH", default=None,
        help="config file (default: $DIGITD_CONFIG if set, else ./config.yaml; predict and "
             "check-config take the defaults and the shipped model when there is none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitd",
        description="Read handwritten digits from scanned images: images dropped into the "
                    "inbox folder are recognised and the results written to the outbox.",
        epilog="Exit codes: 0 success, 1 some inputs failed, 2 bad config or usage, "
               "3 model cannot be loaded, 70 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"digitd {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True,
        help="see 'digitd COMMAND --help' for each")

    run = commands.add_parser(
        "run", help="run the hot-folder service in the foreground",
        description="Run the service in the foreground (systemd style): watch the inbox, "
                    "recognise every image dropped there and write the results to the "
                    "outbox. Stops cleanly on SIGTERM or Ctrl-C.")
    _add_config_option(run)
    run.set_defaults(func=cmd_run)

    predict = commands.add_parser(
        "predict", help="recognise the given files and folders once, then exit",
        description="One-shot recognition of image files and folders: writes exactly what "
                    "the service writes into the outbox, without touching the inputs. With "
                    "the config's 'forms' set, a page that fits a form template is read "
                    "field by field: a line per field, its row in outbox/forms/FORMNAME.csv.")
    _add_config_option(predict)
    predict.add_argument("--model", metavar="PATH", default=None,
                         help="model file to use instead of the configured 'model'")
    predict.add_argument("--out", metavar="DIR", default=None,
                         help="write results to DIR instead of the configured 'outbox'")
    predict.add_argument("--no-annotate", action="store_true",
                         help="do not write annotated pictures")
    predict.add_argument("--json", action="store_true",
                         help="print one result object per input on stdout, one per line")
    predict.add_argument("-v", "--verbose", action="store_true",
                         help="one line per input on stderr even on a terminal "
                              "(instead of the progress bar)")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="image file or folder of images")
    predict.set_defaults(func=cmd_predict)

    check = commands.add_parser(
        "check-config", help="validate the config and print the effective values",
        description="Validate the config file and print the effective config (every key, "
                    "defaults filled in, paths made absolute) as YAML on stdout. Warns on "
                    "stderr when the inbox, outbox or model do not exist.")
    _add_config_option(check)
    check.set_defaults(func=cmd_check_config)

    template = commands.add_parser(
        "template", help="draft a form template from a scan of the empty form",
        description="Find the printed boxes on a scan of the empty form (PDF, PNG, JPEG, "
                    "TIFF; its first page) and write a starting template: one field a box, "
                    "field_1, field_2, ... in reading order, boxes in millimetres (at the "
                    "file's dpi; A4 width when it has none), and a picture with the fields "
                    "named beside it (NAME.fields.png). Rename the fields, add digits, pattern and "
                    "required, and put the file in the folder the config's 'forms' names.")
    _add_config_option(template)
    template.add_argument("blank", metavar="BLANK", help="scan of the empty form")
    template.add_argument("--name", default=None,
                          help="the form's name (default: the scan's file name)")
    template.add_argument("--out", metavar="FILE", default=None,
                          help="the template to write (default: NAME.yaml here)")
    template.add_argument("--force", action="store_true", help="overwrite FILE and its picture")
    template.set_defaults(func=cmd_template)
    return parser


# ---------------------------------------------------------------------------
# Entry point: the one place where errors become exit codes


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except DigitdError as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        print(f"digitd: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("digitd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `digitd check-config | head -1`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 141  # 128 + SIGPIPE, as a shell would report
    except Exception as exc:  # noqa: BLE001 - the crash handler
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        print(f"digitd: crashed: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return EXIT_CRASH


def print_modules() -> None:
    """The debug hook: one line on stderr naming every top-level module loaded."""
    names = sorted({name.partition(".")[0] for name in list(sys.modules)})
    try:
        print(f"digitd: modules: {' '.join(names)}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def entry() -> None:
    """The ``digitd`` command: :func:`main`, then exit.

    Once TensorFlow is loaded, the interpreter's own teardown takes about half
    a second (its modules and threads), longer than predict takes for 500
    images. Every result is written and closed by then, so the process flushes
    its output and leaves at once.
    """
    code = main()
    if os.environ.get(MODULES_ENV) == "1":
        print_modules()
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    import logging

    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe: nothing left to say
        code = code or 141
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
