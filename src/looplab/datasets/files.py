"""Datasets to and from files: JSONL and CSV import (checked whole before anything is written)
and export at any version.

JSONL: one JSON object a line with ``input``, ``expected_output`` (``null`` when there is none),
optionally ``metadata`` (an object) and ``source_trace_id``. Any other key is a mistake reported
on its line (a misspelt ``expected`` would otherwise import items without expected outputs);
a ``ColumnMapping`` names other keys to read instead.

CSV: a header line, then one item a row. A ``ColumnMapping`` says which column(s) hold the
input (several input columns make the input an object keyed by column name), which one the
expected output, and which ones go into metadata (each under its column name). By default the
columns ``input``, ``expected_output``, ``metadata`` (a JSON object, merged into the metadata) and
``source_trace_id`` are read; other columns are left out and reported as ignored. A cell that
holds a JSON object or array (``{...}``, ``[...]``, e.g. chat messages) is read as that JSON;
any other cell is text, so ``007`` stays the text ``007``.

Import is all or nothing: the whole file is decoded and checked first; if any line is wrong,
``ImportFileError`` lists the lines (the first ``LISTED_PROBLEMS``, then how many more) and
nothing is stored. A good file is inserted in one transaction, as one version of the dataset.

Export writes the import format, so exporting a version and importing the file gives the same
items. CSV round trips are exact for text, objects and arrays; numbers, booleans and text that
itself looks like a JSON object come back as text or JSON (use JSONL for exact types).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from looplab.datasets.datasets import change_time, check_name, new_dataset, writable_dataset
from looplab.datasets.items import NewItem, Progress, as_mapping, insert_items, iter_items
from looplab.errors import ConfigError, StoreError
from looplab.store.engine import write_session
from looplab.store.models import Dataset

FORMATS = ("jsonl", "csv")
LISTED_PROBLEMS = 20  # in the error's message
KEPT_PROBLEMS = 500  # in ImportFileError.problems, for a page to show
JSONL_KEYS = ("input", "expected_output", "metadata", "source_trace_id")
CSV_COLUMNS = ("input", "expected_output", "metadata", "source_trace_id")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class Problem:
    """What is wrong with one line of a file (``line`` is ``None`` for the file as a whole)."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class ImportFileError(ConfigError):
    """A file that cannot be imported; ``problems`` lists (up to ``KEPT_PROBLEMS``) lines and why,
    ``count`` how many problems there were in all. Nothing was stored."""

    def __init__(self, problems: list[Problem], count: int | None = None, filename: str | None = None) -> None:
        self.problems = problems[:KEPT_PROBLEMS]
        self.count = count if count is not None else len(problems)
        self.filename = filename
        what = filename or "The file"
        if self.count == 1 and problems[0].line is None:
            head = f"{what}: {problems[0].message} Nothing was imported."
            super().__init__(head)
            return
        listed = "\n".join(f"  {p}" for p in problems[:LISTED_PROBLEMS])
        more = self.count - min(len(problems), LISTED_PROBLEMS)
        tail = f"\n  ... and {more:,} more problem{'' if more == 1 else 's'}." if more > 0 else ""
        plural = "problem" if self.count == 1 else "problems"
        super().__init__(f"{what} has {self.count:,} {plural}; nothing was imported. Fix {'it' if self.count == 1 else 'them'} and import again:\n"
                         f"{listed}{tail}")


@dataclass(frozen=True)
class ColumnMapping:
    """Where an item's parts are in a file: the input column(s) or key(s), the expected output's
    (``None``: items have no expected output), and the columns or keys kept as metadata."""

    input: tuple[str, ...] = ("input",)
    expected: str | None = "expected_output"
    metadata: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.input:
            raise ConfigError("Pick at least one input column.")
        used = [*self.input, *([self.expected] if self.expected else []), *self.metadata]
        twice = sorted({c for c in used if used.count(c) > 1})
        if twice:
            raise ConfigError(f"A column can be used once: {', '.join(map(repr, twice))} is mapped more than once.")


@dataclass(frozen=True)
class ParsedFile:
    """A checked file: its items in order, its format, and CSV columns left out."""

    items: list[NewItem]
    format: str
    ignored_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsvPreview:
    """A CSV file's columns, its first rows (as text), its row count and a suggested mapping."""

    columns: list[str]
    rows: list[dict[str, str]]
    row_count: int
    suggested: ColumnMapping | None


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    dataset: str
    created: bool
    items_added: int
    version: datetime
    format: str
    ignored_columns: tuple[str, ...] = field(default=())


# --- reading files --------------------------------------------------------------------------------


def detect_format(data: bytes, filename: str | None = None) -> str:
    """``"jsonl"`` or ``"csv"``: from the file name's suffix, else from the first character."""
    if filename:
        suffix = PurePath(filename).suffix.lower()
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "jsonl" if head == b"{" else "csv"


def decode(data: bytes, filename: str | None = None) -> str:
    """The file as text; ``ImportFileError`` for an empty file or one that is not UTF-8."""
    if not data.strip():
        raise ImportFileError([Problem(None, "the file is empty; there is nothing to import.")], filename=filename)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFileError([Problem(None, "the file is UTF-16 text; save it as UTF-8 and import it again.")],
                              filename=filename)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        byte = data[err.start:err.start + 1].hex()
        raise ImportFileError([Problem(line, f"not UTF-8 text (byte 0x{byte}); the file seems to use another "
                                             "encoding (Latin-1, Windows-1252?): save it as UTF-8 and import it "
                                             "again.")], filename=filename) from None
    return text.removeprefix("\ufeff")


def parse_file(data: bytes, format: str = "auto", mapping: ColumnMapping | None = None,
               filename: str | None = None) -> ParsedFile:
    """Decode and check a whole JSONL or CSV file; raises ``ImportFileError`` listing every bad line."""
    chosen = detect_format(data, filename) if format == "auto" else format
    if chosen not in FORMATS:
        raise ConfigError(f"Unknown format {format!r}; use auto, jsonl or csv.")
    text = decode(data, filename)
    problems: list[Problem] = []
    if chosen == "jsonl":
        items, ignored = _parse_jsonl(text, mapping, problems), ()
    else:
        items, ignored = _parse_csv(text, mapping, problems)
    if problems:
        raise ImportFileError(problems[:KEPT_PROBLEMS], len(problems), filename)
    if not items:
        raise ImportFileError([Problem(None, "the file holds no items, only a header or blank lines.")],
                              filename=filename)
    return ParsedFile(items=items, format=chosen, ignored_columns=ignored)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# NaN and Infinity are not JSON (PostgreSQL refuses them): a line holding one is a bad line.
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def _loads(text: str) -> Any:
    return _DECODER.decode(text)


def _parse_jsonl(text: str, mapping: ColumnMapping | None, problems: list[Problem]) -> list[NewItem]:
    chosen = mapping or ColumnMapping()
    allowed = {*chosen.input, *chosen.metadata, "metadata", "source_trace_id"}
    if chosen.expected:
        allowed.add(chosen.expected)
    items = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except (ValueError, RecursionError) as err:
            problems.append(Problem(number, f"not valid JSON ({_json_error(err)})."))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(number, f"a line must be a JSON object with {_keys(chosen)}, not "
                                            f"{_json_kind(record)}."))
            continue
        unknown = sorted(set(record) - allowed)
        if unknown:
            problems.append(Problem(number, f"unknown key{'s' if len(unknown) > 1 else ''} "
                                            f"{', '.join(map(repr, unknown))}; a line holds {_keys(chosen)}."))
            continue
        missing = [k for k in (*chosen.input, *([chosen.expected] if chosen.expected else [])) if k not in record]
        if missing:
            problems.append(Problem(number, f"no {' and no '.join(map(repr, missing))} (use null for \"none\")."))
            continue
        item = _item(number, {k: record[k] for k in chosen.input}, record.get(chosen.expected) if chosen.expected
                     else None, record.get("metadata"), {k: record[k] for k in chosen.metadata if k in record},
                     record.get("source_trace_id"), problems)
        if item is not None:
            items.append(item)
    return items


def _keys(mapping: ColumnMapping) -> str:
    keys = [*mapping.input, *([mapping.expected] if mapping.expected else []), *mapping.metadata]
    return ", ".join(keys) + " and optionally metadata (an object) and source_trace_id"


def _json_error(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at column {err.colno}"
    if isinstance(err, RecursionError):
        return "nested too deeply"
    return str(err)


def _json_kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(type(value), "a number")


def _item(number: int, inputs: dict[str, Any], expected: Any, metadata_object: Any, extra_metadata: dict[str, Any],
          source_trace_id: Any, problems: list[Problem]) -> NewItem | None:
    """One item from its parts, or ``None`` with a problem noted for line ``number``."""
    if len(inputs) == 1:
        value = next(iter(inputs.values()))
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(Problem(number, f"{next(iter(inputs))!r} (the input) is empty."))
            return None
    else:
        value = inputs
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in inputs.values()):
            problems.append(Problem(number, f"the input columns ({', '.join(inputs)}) are all empty."))
            return None
    if metadata_object is not None and not isinstance(metadata_object, dict):
        problems.append(Problem(number, f"'metadata' must be a JSON object, not {_json_kind(metadata_object)}."))
        return None
    if source_trace_id is not None and not (isinstance(source_trace_id, str) and source_trace_id.strip()):
        problems.append(Problem(number, "'source_trace_id' must be a trace id (text)."))
        return None
    if source_trace_id is not None and len(source_trace_id) > 64:
        problems.append(Problem(number, "'source_trace_id' is longer than 64 characters; it is not a trace id."))
        return None
    metadata = {**(metadata_object or {}), **extra_metadata}
    return NewItem(input=value, expected_output=expected, metadata=metadata or None,
                   source_trace_id=source_trace_id.strip() if source_trace_id else None)


def _cell(text: str) -> Any:
    """A CSV cell: a JSON object or array when it holds one, else the text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return _loads(stripped)
        except (ValueError, RecursionError):
            return text
    return text


def _csv_rows(text: str, problems: list[Problem]) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, cells) for each row; bad rows noted in ``problems``."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problems.append(Problem(reader.line_num, f"not valid CSV ({err})."))
            return  # the reader cannot find the next row reliably after this
        yield start, row
        start = reader.line_num + 1


def _header(text: str) -> list[str]:
    first = next(csv.reader(io.StringIO(text, newline="")), [])
    return [c.strip() for c in first]


def suggest_mapping(columns: list[str]) -> ColumnMapping | None:
    """The default mapping if the columns have it (``input``, ``expected_output``, ``metadata``)."""
    if "input" not in columns:
        return None
    return ColumnMapping(input=("input",), expected="expected_output" if "expected_output" in columns else None,
                         metadata=())


def preview_csv(data: bytes, rows: int = 5, filename: str | None = None) -> CsvPreview:
    """A CSV file's columns and first ``rows`` rows, for choosing a mapping; ``ImportFileError``
    when it is empty, not UTF-8, not CSV or has no header."""
    text = decode(data, filename)
    problems: list[Problem] = []
    sample: list[dict[str, str]] = []
    columns: list[str] = []
    count = 0
    for number, row in _csv_rows(text, problems):
        if number == 1 or not columns:
            columns = [c.strip() for c in row]
            continue
        if not any(cell.strip() for cell in row):
            continue
        count += 1
        if len(sample) < rows:
            sample.append({c: (row[i] if i < len(row) else "") for i, c in enumerate(columns)})
    if problems:
        raise ImportFileError(problems, filename=filename)
    if not any(columns):
        raise ImportFileError([Problem(1, "the first line must name the columns.")], filename=filename)
    return CsvPreview(columns=columns, rows=sample, row_count=count, suggested=suggest_mapping(columns))


def _parse_csv(text: str, mapping: ColumnMapping | None, problems: list[Problem]
               ) -> tuple[list[NewItem], tuple[str, ...]]:
    columns = _header(text)
    if not any(columns):
        problems.append(Problem(1, "the first line must name the columns (e.g. input,expected_output)."))
        return [], ()
    blank = [str(i + 1) for i, c in enumerate(columns) if not c]
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if blank or twice:
        what = []
        if blank:
            many = len(blank) > 1
            what.append(f"column{'s' if many else ''} {', '.join(blank)} {'have' if many else 'has'} no name")
        if twice:
            what.append(f"{', '.join(map(repr, twice))} appear more than once")
        problems.append(Problem(1, f"in the header, {' and '.join(what)}."))
        return [], ()
    chosen = mapping or ColumnMapping(input=("input",), expected="expected_output",
                                      metadata=())
    wanted = [*chosen.input, *([chosen.expected] if chosen.expected else []), *chosen.metadata]
    missing = [c for c in wanted if c not in columns]
    if missing:
        hint = " Map the columns (--input-col, --expected-col, --metadata-col)." if mapping is None else ""
        problems.append(Problem(1, f"no column {' and no column '.join(map(repr, missing))}; the columns are "
                                   f"{', '.join(map(repr, columns))}.{hint}"))
        return [], ()
    index = {c: i for i, c in enumerate(columns)}
    metadata_object = "metadata" if "metadata" in index and "metadata" not in wanted else None
    trace_column = "source_trace_id" if "source_trace_id" in index and "source_trace_id" not in wanted else None
    used = set(wanted) | {metadata_object, trace_column}
    ignored = tuple(c for c in columns if c not in used)
    items = []
    rows = _csv_rows(text, problems)
    next(rows, None)  # the header
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            problems.append(Problem(number, f"{len(row)} field{'s' if len(row) != 1 else ''}, but the header has "
                                            f"{len(columns)} columns (a missing or extra comma, or an unquoted "
                                            "line break?)."))
            continue
        inputs = {c: _cell(row[index[c]]) for c in chosen.input}
        expected = _cell(row[index[chosen.expected]]) if chosen.expected else None
        if expected == "":
            expected = None
        raw_metadata = row[index[metadata_object]].strip() if metadata_object else ""
        metadata: Any = None
        if raw_metadata:
            try:
                metadata = _loads(raw_metadata)
            except (ValueError, RecursionError) as err:
                problems.append(Problem(number, f"'metadata' is not valid JSON ({_json_error(err)})."))
                continue
        extra = {c: _cell(row[index[c]]) for c in chosen.metadata if row[index[c]].strip()}
        trace_id = row[index[trace_column]].strip() or None if trace_column else None
        item = _item(number, inputs, expected, metadata, extra, trace_id, problems)
        if item is not None:
            items.append(item)
    return items, ignored


# --- importing -------------------------------------------------------------------------------------


def import_file(
    url: str,
    dataset: str,
    data: bytes,
    *,
    format: str = "auto",
    mapping: ColumnMapping | None = None,
    filename: str | None = None,
    create: bool = True,
    description: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a JSONL or CSV file into ``dataset`` (created when new and ``create``), all or nothing.

    The file is checked whole first: any bad line raises ``ImportFileError`` and nothing is
    stored. Then the dataset (if new) and every item are written in one transaction, as one
    version. ``progress(done, total)`` follows the insert. Raises ``NotFound`` for a missing
    dataset when not ``create``, ``ConfigError`` for an archived one, ``StoreError`` when the
    database refuses the write (nothing is stored then either).
    """
    name = check_name(dataset)
    parsed = parse_file(data, format, mapping, filename)
    try:
        with write_session(url) as session:
            exists = session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None
            target = writable_dataset(session, name) if exists or not create else new_dataset(session, name,
                                                                                                description)
            now = change_time(session, target.id)
            insert_items(session, target.id, parsed.items, now, progress)
    except IntegrityError:
        raise ConfigError(f"The dataset {name!r} was created by someone else during the import; import again "
                          "to add the items to it.") from None
    except SQLAlchemyError as err:
        raise StoreError(f"Cannot store the items: {getattr(err, 'orig', None) or err}. Nothing was imported.") from err
    return ImportResult(dataset=name, created=not exists, items_added=len(parsed.items), version=now,
                        format=parsed.format, ignored_columns=parsed.ignored_columns)


# --- exporting --------------------------------------------------------------------------------------


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def export_lines(url: str, dataset: str, version: datetime | None = None, format: str = "jsonl") -> Iterator[str]:
    """``dataset`` as of ``version`` (``None``: now) as JSONL or CSV (header first), in chunks of
    whole lines, read from the database a page at a time."""
    for chunk, _count in _export_chunks(url, dataset, version, format):
        yield chunk


def _export_chunks(url: str, dataset: str, version: datetime | None, format: str) -> Iterator[tuple[str, int]]:
    if format not in FORMATS:
        raise ConfigError(f"Unknown format {format!r}; use jsonl or csv.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if format == "csv":
        writer.writerow(CSV_COLUMNS)
    count = 0
    for item in iter_items(url, dataset, version):
        if format == "jsonl":
            buffer.write(json.dumps(as_mapping(item), ensure_ascii=False))
            buffer.write("\n")
        else:
            writer.writerow([_csv_cell(item.input), _csv_cell(item.expected_output),
                             _csv_cell(item.metadata) if item.metadata else "", item.source_trace_id or ""])
        count += 1
        if buffer.tell() > 64_000:
            yield buffer.getvalue(), count
            buffer.seek(0)
            buffer.truncate()
            count = 0
    yield buffer.getvalue(), count


def write_export(url: str, dataset: str, stream: IO[str], version: datetime | None = None,
                 format: str = "jsonl") -> int:
    """Write the export into ``stream``; returns how many items it holds."""
    total = 0
    for chunk, count in _export_chunks(url, dataset, version, format):
        stream.write(chunk)
        total += count
    return total


def export_text(url: str, dataset: str, version: datetime | None = None, format: str = "jsonl") -> str:
    """The whole export as one string (for a download button)."""
    return "".join(export_lines(url, dataset, version, format))
