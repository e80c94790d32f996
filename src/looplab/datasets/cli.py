"""``looplab dataset ...``: list, import and export datasets."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from looplab.cli_options import DbOption, progress_bar
from looplab.config import DEFAULT_DATABASE_URL
from looplab.datasets.datasets import get_dataset, list_datasets
from looplab.datasets.files import ColumnMapping, import_file, write_export
from looplab.errors import ConfigError
from looplab.timeparse import WHEN_HELP, iso_utc, parse_when

dataset_app = typer.Typer(help="Datasets of test cases: list, import from and export to JSONL or CSV.", no_args_is_help=True)


class ImportFormat(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    csv = "csv"


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


@dataset_app.command("list")
def list_command(
    db: DbOption = DEFAULT_DATABASE_URL,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived datasets.")] = False,
) -> None:
    """List datasets: name, current items, last change (newest first)."""
    datasets = list_datasets(db, include_archived=archived)
    if not datasets:
        typer.echo("No datasets yet. Import one with `looplab dataset import NAME FILE`, or add traces from the app.")
        return
    width = max(len(d.name) for d in datasets)
    typer.echo(f"{'name':<{width}}  {'items':>8}  last change (UTC)")
    for d in datasets:
        flag = "  (archived)" if d.archived else ""
        typer.echo(f"{d.name:<{width}}  {d.item_count:>8,}  {d.last_change:%Y-%m-%d %H:%M:%S}{flag}")


@dataset_app.command("import")
def import_command(
    name: Annotated[str, typer.Argument(help="The dataset to add the items to; created if it does not exist.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A JSONL or CSV file (UTF-8).")],
    db: DbOption = DEFAULT_DATABASE_URL,
    format_: Annotated[
        ImportFormat,
        typer.Option("--format", help="auto: from the file's suffix (.jsonl, .csv), else from its first character."),
    ] = ImportFormat.auto,
    input_col: Annotated[
        Optional[list[str]],
        typer.Option("--input-col", help="Column (CSV) or key (JSONL) holding the input; repeat it for several "
                                         "columns, which makes the input an object. Default: input."),
    ] = None,
    expected_col: Annotated[
        Optional[str],
        typer.Option("--expected-col", help="Column or key holding the expected output; an empty value means items "
                                            "have none. Default: expected_output."),
    ] = None,
    metadata_col: Annotated[
        Optional[list[str]],
        typer.Option("--metadata-col", help="Column or key to keep in each item's metadata (under its name); "
                                            "repeatable. A CSV column named metadata holding a JSON object is "
                                            "always merged in."),
    ] = None,
    description: Annotated[
        Optional[str], typer.Option(help="Description of the dataset, when the import creates it.")
    ] = None,
) -> None:
    """Import items from a JSONL or CSV file, all or nothing: a bad line stores nothing."""
    mapping = None
    if input_col or expected_col is not None or metadata_col:
        mapping = ColumnMapping(input=tuple(input_col or ("input",)),
                                expected=(expected_col or None) if expected_col is not None else "expected_output",
                                metadata=tuple(metadata_col or ()))
    try:
        data = file.read_bytes()
    except OSError as err:
        raise ConfigError(f"Cannot read {file}: {err.strerror or err}.") from None
    with progress_bar(f"Importing into {name}") as progress:
        result = import_file(db, name, data, format=format_.value, mapping=mapping, filename=file.name,
                             description=description, progress=progress)
    plural = "" if result.items_added == 1 else "s"
    verb = "Created" if result.created else "Added to"
    typer.echo(f"{verb} dataset {result.dataset!r}: {result.items_added:,} item{plural} from {file.name} "
               f"({result.format}), version {iso_utc(result.version)}.")
    if result.ignored_columns:
        typer.echo(f"Columns not imported: {', '.join(result.ignored_columns)} (keep them with --metadata-col).",
                   err=True)


@dataset_app.command("export")
def export_command(
    name: Annotated[str, typer.Argument(help="The dataset to export.")],
    db: DbOption = DEFAULT_DATABASE_URL,
    version: Annotated[
        Optional[str],
        typer.Option(help=f"Export the dataset as it was at this time ({WHEN_HELP}); default: now."),
    ] = None,
    format_: Annotated[
        ExportFormat,
        typer.Option("--format", help="jsonl: one object a line (input, expected_output, metadata, "
                                      "source_trace_id). csv: the same as columns, JSON values as JSON text."),
    ] = ExportFormat.jsonl,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", dir_okay=False, help="Write to this file instead of stdout."),
    ] = None,
) -> None:
    """Export a dataset's items (at a version) in the import format: export then import gives the same items."""
    moment = None
    if version is not None:
        try:
            moment = parse_when(version, datetime.now(timezone.utc))
        except ConfigError as err:
            raise ConfigError(f"--version: {err}") from None
    get_dataset(db, name)  # a missing dataset is an error before anything is written
    if out is None:
        write_export(db, name, sys.stdout, moment, format_.value)
        sys.stdout.flush()
        return
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as stream:
            count = write_export(db, name, stream, moment, format_.value)
        os.replace(partial, out)
    except OSError as err:
        raise ConfigError(f"Cannot write {out}: {err.strerror or err}.") from None
    finally:
        partial.unlink(missing_ok=True)
    at = f" as of {iso_utc(moment)}" if moment else ""
    typer.echo(f"Exported {count:,} item{'' if count == 1 else 's'} of {name!r}{at} to {out}.", err=True)
