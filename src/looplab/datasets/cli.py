"""``looplab dataset ...``: list, import and export datasets."""

from __future__ import annotations

import typer

dataset_app = typer.Typer(help="Datasets of test cases: list, import from and export to JSONL or CSV.", no_args_is_help=True)
