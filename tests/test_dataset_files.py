"""Datasets to and from files: JSONL and CSV import (all or nothing, every bad line reported),
export at a version, round trips, and ``looplab dataset list/import/export``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from looplab.cli import app
from looplab.datasets import (
    ColumnMapping,
    ImportFileError,
    NewItem,
    add_items,
    create_dataset,
    current_version,
    edit_item,
    export_text,
    get_dataset,
    import_file,
    items_at,
    iter_items,
    list_datasets,
    preview_csv,
)
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session
from looplab.store.models import Dataset, DatasetItem


def jsonl(*records: Any) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def stored(url: str) -> tuple[int, int]:
    """How many datasets and item rows the database holds."""
    with read_session(url) as session:
        return (session.scalar(select(func.count()).select_from(Dataset)) or 0,
                session.scalar(select(func.count()).select_from(DatasetItem)) or 0)


def content(url: str, dataset: str, version: Any = None) -> list[tuple[Any, ...]]:
    return [(i.input, i.expected_output, i.metadata, i.source_trace_id) for i in iter_items(url, dataset, version)]


GOOD = [
    {"input": "Where is my parcel?", "expected_output": "Check Account > Orders.", "metadata": {"intent": "shipping"}},
    {"input": {"message": "Où est mon colis ?"}, "expected_output": {"reply": "Demain."}},
    {"input": [{"role": "user", "content": "hi"}], "expected_output": None, "source_trace_id": "t-1"},
]


# --- JSONL ----------------------------------------------------------------------------------------------


def test_jsonl_import_creates_the_dataset_and_keeps_order_and_types(db_url: str) -> None:
    result = import_file(db_url, "golden", jsonl(*GOOD), filename="golden.jsonl")

    assert (result.dataset, result.created, result.items_added, result.format) == ("golden", True, 3, "jsonl")
    assert content(db_url, "golden") == [
        ("Where is my parcel?", "Check Account > Orders.", {"intent": "shipping"}, None),
        ({"message": "Où est mon colis ?"}, {"reply": "Demain."}, {}, None),
        ([{"role": "user", "content": "hi"}], None, {}, "t-1"),
    ]
    assert current_version(db_url, "golden") == result.version

    again = import_file(db_url, "golden", jsonl(GOOD[0]), filename="more.jsonl")
    assert not again.created and get_dataset(db_url, "golden").item_count == 4


def test_jsonl_keys_can_be_mapped(db_url: str) -> None:
    data = jsonl({"question": "q1", "answer": "a1", "topic": "returns"})
    import_file(db_url, "golden", data, mapping=ColumnMapping(input=("question",), expected="answer",
                                                              metadata=("topic",)), filename="x.jsonl")
    assert content(db_url, "golden") == [("q1", "a1", {"topic": "returns"}, None)]


def test_a_file_with_some_bad_lines_stores_nothing_and_lists_them(db_url: str) -> None:
    create_dataset(db_url, "golden")
    add_items(db_url, "golden", [NewItem("kept", "as is")])
    lines = [
        json.dumps(GOOD[0]),
        '{"input": "unterminated", ',
        "[1, 2]",
        json.dumps({"input": "no expected"}),
        json.dumps({"input": "typo", "expected": "x"}),
        json.dumps({"input": "", "expected_output": "x"}),
        json.dumps({"input": "m", "expected_output": "x", "metadata": ["not", "an", "object"]}),
        "",
        json.dumps({"input": "nan", "expected_output": float("nan")}),
        json.dumps(GOOD[1]),
    ]

    with pytest.raises(ImportFileError) as caught:
        import_file(db_url, "golden", "\n".join(lines).encode(), filename="cases.jsonl")

    err = caught.value
    assert [p.line for p in err.problems] == [2, 3, 4, 5, 6, 7, 9]
    message = str(err)
    assert message.startswith("cases.jsonl has 7 problems; nothing was imported.")
    for expected in ("line 2: not valid JSON (", "line 3: a line must be a JSON object", "not a list",
                     "line 4: no 'expected_output' (use null", "line 5: unknown key 'expected'",
                     "line 6: 'input' (the input) is empty", "line 7: 'metadata' must be a JSON object, not a list",
                     "line 9: not valid JSON (NaN is not valid JSON)"):
        assert expected in message
    assert stored(db_url) == (1, 1)
    assert content(db_url, "golden") == [("kept", "as is", {}, None)]


def test_many_bad_lines_are_listed_up_to_a_cap(db_url: str) -> None:
    data = b"".join(b"not json\n" for _ in range(120))
    with pytest.raises(ImportFileError) as caught:
        import_file(db_url, "golden", data, format="jsonl")
    assert caught.value.count == 120 and len(caught.value.problems) == 120
    assert str(caught.value).count("\n  line ") == 20 and "... and 100 more problems." in str(caught.value)
    assert stored(db_url) == (0, 0)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the file is empty; there is nothing to import."),
    (b"  \n\n \r\n", "the file is empty"),
    ("input,expected_output\ncafé,x\n".encode("latin-1"), "line 2: not UTF-8 text (byte 0xe9)"),
    (b'{"input": "ok", "expected_output": "x"}\n{"input": "\xff"}\n', "line 2: not UTF-8 text (byte 0xff)"),
    ("input,expected_output\nx,y\n".encode("utf-16"), "UTF-16 text; save it as UTF-8"),
    (b"input,expected_output\n", "holds no items, only a header"),
])
def test_empty_and_badly_encoded_files_are_reported(db_url: str, data: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match="nothing was imported|Nothing was imported") as caught:
        import_file(db_url, "golden", data, filename="cases.csv")
    assert message in str(caught.value)
    assert stored(db_url) == (0, 0)


def test_a_utf8_byte_order_mark_is_fine(db_url: str) -> None:
    import_file(db_url, "golden", b"\xef\xbb\xbf" + jsonl(GOOD[0]), filename="x.jsonl")
    assert items_at(db_url, "golden").total == 1


def test_unknown_formats_and_datasets_that_cannot_take_items(db_url: str) -> None:
    with pytest.raises(ConfigError, match="Unknown format 'xml'"):
        import_file(db_url, "golden", jsonl(GOOD[0]), format="xml")
    with pytest.raises(NotFound, match="no dataset named 'golden'"):
        import_file(db_url, "golden", jsonl(GOOD[0]), create=False)


# --- CSV ------------------------------------------------------------------------------------------------


def test_csv_with_the_default_columns_and_json_cells(db_url: str) -> None:
    data = (
        'input,expected_output,metadata,source_trace_id,notes\n'
        'Where is my parcel?,"Check Account > Orders.","{""intent"": ""shipping""}",t-9,ignored\n'
        '"[{""role"": ""user"", ""content"": ""hi""}]",,,,\n'
        '"[urgent] my parcel","007",,,\n'
        '"multi\nline input",ok,,,\n'
    ).encode()

    result = import_file(db_url, "golden", data, filename="cases.csv")

    assert result.ignored_columns == ("notes",)
    assert content(db_url, "golden") == [
        ("Where is my parcel?", "Check Account > Orders.", {"intent": "shipping"}, "t-9"),
        ([{"role": "user", "content": "hi"}], None, {}, None),  # a JSON array cell is JSON; empty: no expected
        ("[urgent] my parcel", "007", {}, None),  # not JSON: text; numbers stay text
        ("multi\nline input", "ok", {}, None),
    ]


def test_csv_column_mapping_several_inputs_and_metadata(db_url: str) -> None:
    data = b"question,context,answer,topic,reviewer\nq1,c1,a1,returns,maria\nq2,,a2,,\n"
    preview = preview_csv(data)
    assert preview.columns == ["question", "context", "answer", "topic", "reviewer"]
    assert preview.row_count == 2 and preview.rows[0]["answer"] == "a1" and preview.suggested is None

    mapping = ColumnMapping(input=("question", "context"), expected="answer", metadata=("topic",))
    result = import_file(db_url, "golden", data, mapping=mapping, filename="faq.csv")

    assert result.ignored_columns == ("reviewer",)
    assert content(db_url, "golden") == [
        ({"question": "q1", "context": "c1"}, "a1", {"topic": "returns"}, None),
        ({"question": "q2", "context": ""}, "a2", {}, None),
    ]


def test_csv_with_missing_columns_and_bad_rows_stores_nothing(db_url: str) -> None:
    with pytest.raises(ImportFileError, match=r"line 1: no column 'input' and no column 'expected_output'; the "
                                              r"columns are 'question', 'answer'\. Map the columns"):
        import_file(db_url, "golden", b"question,answer\nq,a\n", filename="x.csv")
    with pytest.raises(ImportFileError, match="line 1: no column 'expected'"):
        import_file(db_url, "golden", b"input,answer\nq,a\n", filename="x.csv",
                    mapping=ColumnMapping(expected="expected"))
    with pytest.raises(ImportFileError, match="'a' appear more than once"):
        import_file(db_url, "golden", b"input,a,a\nq,1,2\n", filename="x.csv")

    data = (b'input,expected_output,metadata\n'
            b'ok,fine,\n'
            b'too,many,fields,here\n'
            b',empty input,\n'
            b'x,y,{not json}\n'
            b'x,y,"[1]"\n')
    with pytest.raises(ImportFileError) as caught:
        import_file(db_url, "golden", data, filename="x.csv")
    assert [str(p) for p in caught.value.problems] == [
        "line 3: 4 fields, but the header has 3 columns (a missing or extra comma, or an unquoted line break?).",
        "line 4: 'input' (the input) is empty.",
        "line 5: 'metadata' is not valid JSON (Expecting property name enclosed in double quotes at column 2).",
        "line 6: 'metadata' must be a JSON object, not a list.",
    ]
    with pytest.raises(ImportFileError, match="line 2: not valid CSV"):
        import_file(db_url, "golden", b'input,expected_output\n"unterminated,x\n', filename="x.csv")
    assert stored(db_url) == (0, 0)


def test_a_mapping_uses_each_column_once() -> None:
    with pytest.raises(ConfigError, match="'a' is mapped more than once"):
        ColumnMapping(input=("a",), expected="a")
    with pytest.raises(ConfigError, match="at least one input column"):
        ColumnMapping(input=())


# --- many rows ------------------------------------------------------------------------------------------


def test_a_100k_row_file_imports_in_one_version(db_url: str) -> None:
    rows = 100_000
    data = "".join(json.dumps({"input": f"question {i}", "expected_output": f"answer {i}", "metadata": {"i": i}}) + "\n"
                   for i in range(rows)).encode()
    calls: list[tuple[int, int]] = []

    result = import_file(db_url, "big", data, filename="big.jsonl", progress=lambda d, t: calls.append((d, t)))

    assert result.items_added == rows and calls[0] == (0, rows) and calls[-1] == (rows, rows)
    page = items_at(db_url, "big", offset=rows - 2, limit=5)
    assert page.total == rows and [i.input for i in page.items] == ["question 99998", "question 99999"]
    assert [i.input for i in items_at(db_url, "big", search="99999").items] == ["question 99999"]
    # ...and one bad line at the very end sinks the whole file.
    with pytest.raises(ImportFileError, match=f"line {rows + 1}: not valid JSON"):
        import_file(db_url, "big", data + b"oops\n", filename="big.jsonl")
    assert stored(db_url) == (1, rows)


# --- export and round trips ----------------------------------------------------------------------------


ODD = [
    *[NewItem(**r) for r in GOOD],
    NewItem("comma, \"quotes\" and\nnewlines", "ünïcödé ✓", {"nested": {"list": [1, 2.5, None, True]}}),
    NewItem({"question": "q", "context": ["a", "b"]}, {"answer": 42}),
]


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_export_then_import_gives_the_same_items(db_url: str, file_format: str) -> None:
    create_dataset(db_url, "golden")
    add_items(db_url, "golden", ODD)

    exported = export_text(db_url, "golden", format=file_format)
    import_file(db_url, "copy", exported.encode(), filename=f"golden.{file_format}")

    assert content(db_url, "copy") == content(db_url, "golden")
    assert export_text(db_url, "copy", format=file_format) == exported


def test_export_at_a_version(db_url: str) -> None:
    create_dataset(db_url, "golden")
    [first] = add_items(db_url, "golden", [NewItem("q", "old answer")])
    before = current_version(db_url, "golden")
    edit_item(db_url, "golden", first, expected_output="new answer")

    assert [json.loads(line)["expected_output"] for line in export_text(db_url, "golden", before).splitlines()] == [
        "old answer"]
    rows = list(csv.DictReader(io.StringIO(export_text(db_url, "golden", format="csv"))))
    assert rows == [{"input": "q", "expected_output": "new answer", "metadata": "", "source_trace_id": ""}]


# --- looplab dataset ------------------------------------------------------------------------------------


def looplab_cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_cli_import_list_and_export(db_url: str, tmp_path: Path) -> None:
    empty = looplab_cli("dataset", "list", "--db", db_url)
    assert empty.exit_code == 0 and "No datasets yet" in empty.stdout

    source = tmp_path / "faq.csv"
    source.write_text("question,answer,topic,internal\nq1,a1,returns,x\nq2,a2,shipping,y\n", encoding="utf-8")
    imported = looplab_cli("dataset", "import", "faq", str(source), "--db", db_url, "--input-col", "question",
                           "--expected-col", "answer", "--metadata-col", "topic", "--description", "FAQ answers")
    assert imported.exit_code == 0, imported.output
    assert "Created dataset 'faq': 2 items from faq.csv (csv), version 20" in imported.stdout
    assert "Columns not imported: internal" in imported.stderr
    assert get_dataset(db_url, "faq").description == "FAQ answers"

    listed = looplab_cli("dataset", "list", "--db", db_url)
    assert listed.exit_code == 0 and "faq" in listed.stdout and " 2 " in listed.stdout

    exported = looplab_cli("dataset", "export", "faq", "--db", db_url, "--format", "jsonl")
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line) for line in exported.stdout.splitlines()] == [
        {"input": "q1", "expected_output": "a1", "metadata": {"topic": "returns"}},
        {"input": "q2", "expected_output": "a2", "metadata": {"topic": "shipping"}},
    ]

    out = tmp_path / "faq-export.csv"
    to_file = looplab_cli("dataset", "export", "faq", "--db", db_url, "--format", "csv", "--out", str(out))
    assert to_file.exit_code == 0 and "Exported 2 items of 'faq' to" in to_file.stderr
    again = looplab_cli("dataset", "import", "faq-copy", str(out), "--db", db_url)
    assert again.exit_code == 0, again.output
    assert content(db_url, "faq-copy") == content(db_url, "faq")

    old = looplab_cli("dataset", "export", "faq", "--db", db_url, "--version", "2000-01-01")
    assert old.exit_code == 0 and old.stdout == ""


def test_cli_errors_are_messages(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"input": "ok", "expected_output": "x"}\n{oops\n')

    result = looplab_cli("dataset", "import", "golden", str(bad), "--db", db_url)

    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith("Error: bad.jsonl has 1 problem; nothing was imported.")
    assert "line 2: not valid JSON" in result.stderr
    assert list_datasets(db_url) == []

    missing = looplab_cli("dataset", "export", "nope", "--db", db_url)
    assert missing.exit_code == 2 and "There is no dataset named 'nope'" in missing.stderr
    create_dataset(db_url, "golden")
    when = looplab_cli("dataset", "export", "golden", "--db", db_url, "--version", "last tuesday")
    assert when.exit_code == 2 and "--version: 'last tuesday' is not a time" in when.stderr
