"""The one result writer: commits a batch of plain records to the outbox.

A record is what a stage produced for one input: its reserved NAME, the result
dict, maybe its pictures (one, or one per page). :meth:`Writer.commit` writes
a batch of them as one group commit (durably or not) and owns CSV
de-duplication, of results.csv's rows and of the forms CSVs'; a quarantine is a one-record commit followed by
:meth:`Writer.quarantine`. The order of the
steps is ``docs/DESIGN.md``, "Durability".
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .outbox import FORMS, RESULTS, Outbox, make_durable
from .results import csv_rows, form_columns, form_rows


@dataclass
class Record:
    """One input's files-to-be: ``results/NAME.json``, its CSV rows, its pictures
    (``annotated/NAME.png``, or ``annotated/NAME.pN.png`` per page of a document)."""

    name: str
    result: dict[str, Any]
    picture: bytes | None = None
    row_may_exist: bool = False  # an earlier attempt may already have appended its CSV rows
    page_pictures: tuple[tuple[int, bytes], ...] = ()  # (page number, PNG)


class Writer:
    """Writes records into an :class:`Outbox`; ``durable`` fsyncs before anything
    is published (the service), else only the atomic renames (``digitd predict``)."""

    def __init__(self, outbox: Outbox, *, durable: bool) -> None:
        self.outbox = outbox
        self.durable = durable
        outbox.sync_new_folders = durable

    def commit(self, records: Sequence[Record], *,
               sync_paths: Sequence[str] = (),
               originals: Sequence[str] = ()) -> list[Exception | None]:
        """Write a batch: per record its picture and its JSON staged in the NAME's
        reservation; then every CSV row in one locked write (a row results.csv
        already has is not written again); when durable, one sync of rows, JSONs,
        ``sync_paths`` (the journals) and their folders, and ``originals`` (the
        inputs, best effort: a user's copy may never have been synced); then every JSON renamed into place (last) and, when
        durable, ``results/`` fsynced.

        Returns, per record, None (published) or the error that kept it from
        being staged (an OSError, or a ValueError/TypeError for a result JSON
        cannot hold: that input alone fails). Raises OSError when a step of the whole batch fails: then
        any of its rows may be written and any of its JSONs published.
        """
        box = self.outbox
        errors: list[Exception | None] = []
        staged: list[Record] = []
        for record in records:
            try:
                if record.picture is not None:
                    box.write_annotated(record.name, record.picture)
                for page, png in record.page_pictures:
                    box.write_annotated(record.name, png, page)
                box.stage_json(record.name, record.result)
            except (OSError, ValueError, TypeError) as exc:  # (a value JSON cannot hold)
                errors.append(exc)
                continue
            errors.append(None)
            staged.append(record)
        if not staged:
            return errors
        existing = self._existing(staged)
        rows = self._new_rows(staged, existing)
        forms = self._new_form_rows(staged, existing)
        made, made_forms = box.append_rows(rows, forms, fsync=False)
        if self.durable:
            paths = [box.reserve_path(r.name) for r in staged]
            journals = [p for p in sync_paths if os.path.lexists(p)]  # one removed by hand
            paths += journals
            folders = sorted({os.path.dirname(p) for p in journals})  # the journals' names
            if rows:
                paths.append(os.fspath(box.csv_path))
            paths += [os.fspath(box.form_csv_path(f)) for f, (_, r) in forms.items() if r]
            if made:
                folders.append(os.fspath(box.root))  # results.csv's name
            if made_forms:
                folders.append(os.fspath(box.root / FORMS))  # the new forms CSVs' names
            make_durable(paths, folders, originals)
        for record in staged:
            box.publish_json(record.name)
        if self.durable:
            box.sync_folder(RESULTS)
        return errors

    def _existing(self, staged: Sequence[Record]) -> dict[str, set[tuple[str, str]]]:
        """results.csv's rows by result, read only when a record is a redo."""
        if any(r.row_may_exist for r in staged):
            return self.outbox.csv_results()
        return {}

    def _new_rows(self, staged: Sequence[Record],
                  existing: dict[str, set[tuple[str, str]]]) -> list[dict[str, str]]:
        """The CSV rows of ``staged`` that results.csv does not have yet.

        A row is known by its result and its (page, index). A redo writes the
        rows of its numbers that an earlier attempt's cut-short write left out;
        nothing when the input already has its own row (no page: blank, failed,
        or an older version's), nor an own row when it already has any row."""
        box = self.outbox
        rows = []
        for record in staged:
            rel = box.result_rel(record.name)
            new = csv_rows(record.result, rel)
            had = existing.get(rel) if record.row_may_exist else None
            if had:
                new = [] if ("", "") in had else [
                    r for r in new if r["page"] and (r["page"], r["index"]) not in had]
            rows += new
        return rows

    def _new_form_rows(self, staged: Sequence[Record], existing: dict[str, set[tuple[str, str]]]
                       ) -> dict[str, tuple[tuple[str, ...], list[dict[str, str]]]]:
        """Per form, its CSV's columns and the rows of ``staged`` it does not have yet.

        The forms rows of a batch are written just before its results.csv rows,
        under one lock: a redo whose input has a row in results.csv has its forms
        rows too. One without is known in a form's CSV by (file, page), once the
        rows of the other results of that file name (:meth:`written_elsewhere`)
        are counted out. Only rows under the header it writes count: a row under
        another (an earlier template's, in a CSV since set aside) was read with
        that template, and the redo's own goes into the current CSV."""
        out: dict[str, tuple[tuple[str, ...], list[dict[str, str]]]] = {}
        counts: dict[str, Any] = {}
        sources: dict[str, set[str]] | None = None
        for record in staged:
            rows = form_rows(record.result)
            if not rows:
                continue
            rel = self.outbox.result_rel(record.name)
            if record.row_may_exist and existing.get(rel):
                continue
            for form, columns, row in rows:
                if record.row_may_exist:
                    if form not in counts:
                        counts[form] = self.outbox.form_csv_keys(form, columns)
                    if sources is None:
                        sources = self.outbox.csv_sources()
                    key = (row["file"], row["page"])
                    others = self.written_elsewhere(sources.get(row["file"], set()) - {rel},
                                                    form, columns, int(row["page"]))
                    if counts[form][key] > others:
                        counts[form][key] -= 1
                        continue
                out.setdefault(form, (columns, []))[1].append(row)
        return out

    def written_elsewhere(self, results: set[str], form: str, columns: Sequence[str],
                          page: int) -> int:
        """How many of ``results`` (other inputs of one file name, each with a row in
        results.csv) have a row for ``page`` in ``form``'s CSVs of ``columns``: those
        whose JSON reads that page as that form with those columns, and those not
        published (a redo of this batch too: its rows in results.csv mean its forms
        rows were written)."""
        count = 0
        for rel in results:
            try:
                with open(self.outbox.root / rel, "rb") as f:
                    result = json.loads(f.read())
            except (OSError, ValueError):
                count += 1
                continue
            pages = result.get("pages") or () if isinstance(result, dict) else ()
            read = pages[page - 1] if len(pages) >= page else {}
            if (read.get("form") or {}).get("name") == form \
                    and form_columns(list(read.get("fields") or ())) == tuple(columns):
                count += 1
        return count

    def quarantine(self, path: Path, name: str, reason: str, attempts: int, *,
                   source: str, sha256: str | None) -> Path:
        """The original to ``failed/`` with ``failed/NAME.error.json``."""
        return self.outbox.quarantine(path, name, reason, attempts, source=source, sha256=sha256,
                                      fsync=self.durable)
