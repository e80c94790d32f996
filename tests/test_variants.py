"""Variants: files, templates, code tasks, versions, and the "change one variable" diff."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from looplab.errors import ConfigError, NotFound
from looplab.experiments.variants import (
    TemplateError,
    VariantSpec,
    diff_variants,
    get_variant,
    list_variants,
    load_variant_file,
    render,
    render_messages,
    resolve_task,
    save_variant,
    variant_versions,
)


def retrieve_top(input: dict, params: dict) -> dict:
    """A code task for the tests: the first ``top_k`` words of the question."""
    return {"context": input["question"].split()[: params["top_k"]]}


def write(tmp_path: Path, text: str, name: str = "variant.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def prompt_spec(**changes: object) -> VariantSpec:
    fields: dict = dict(name="support", kind="prompt", model="openai:gpt-4o-mini", system="Be brief.",
                        prompt="{{ input.question }}", params={"temperature": 0.2})
    fields.update(changes)
    return VariantSpec(**fields)


# --- Files ------------------------------------------------------------------------------------------


def test_a_prompt_variant_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, """
name: support-answer
model: mock:support
params: {temperature: 0.2, quality: 0.9}
system: You answer customer questions.
prompt: "Question: {{ input.question }}"
evaluators:
  - exact-match
  - {name: polite, type: judge, template: correctness, model: "mock:judge"}
""")
    spec = load_variant_file(path)
    assert (spec.name, spec.kind, spec.model) == ("support-answer", "prompt", "mock:support")
    assert spec.params == {"temperature": 0.2, "quality": 0.9}
    assert spec.evaluators[0] == "exact-match" and spec.evaluators[1]["name"] == "polite"
    assert spec.config == {"kind": "prompt", "model": "mock:support", "system": "You answer customer questions.",
                           "prompt": "Question: {{ input.question }}", "params": {"temperature": 0.2, "quality": 0.9}}


def test_a_code_task_file_loads(tmp_path: Path) -> None:
    spec = load_variant_file(write(tmp_path, "name: rag\ntask: tests.test_variants:retrieve_top\nparams: {top_k: 2}\n"))
    assert (spec.kind, spec.task, spec.params) == ("code", "tests.test_variants:retrieve_top", {"top_k": 2})
    task = resolve_task(spec.task)
    assert task({"question": "where is my parcel"}, spec.params) == {"context": ["where", "is"]}


@pytest.mark.parametrize(("text", "message"), [
    ("name: [unclosed", "not valid YAML at line 1"),
    ("- a list", "holds a mapping"),
    ("model: mock:x\nprompt: hi\n", "needs a name"),
    ("name: x\nmodel: mock:x\n", "needs a prompt"),
    ("name: x\nmodel: mock:x\nprompt: hi\ntask: a:b\n", "either prompt"),
    ("name: x\nmodel: mock:x\nprompt: hi\ntemperature: 0\n", "Unknown key temperature"),
    ("name: x\nmodel: mock:x\nprompt: hi\nparams: [1]\n", "params must be a mapping"),
    ("name: x\nprompt: hi\n", "needs a model"),
    ("name: x\nmodel: gpt-4o\nprompt: hi\n", "needs a model such as"),
    ("name: x\nmodel: mock:x\nprompt: '{{ input.question '\n", "does not parse"),
    ("name: x\ntask: not-a-path\n", "module:function"),
    ("name: x\nmodel: mock:x\nprompt: hi\nevaluators: [1]\n", "evaluators must be"),
])
def test_a_bad_variant_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_variant_file(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read the variant file"):
        load_variant_file(tmp_path / "nope.yaml")


# --- Templates ----------------------------------------------------------------------------------------


def test_templates_render_the_item_input() -> None:
    messages = render_messages(prompt_spec(system="Reply in {{ input.lang }}."), {"question": "Hi?", "lang": "French"})
    assert messages == [{"role": "system", "content": "Reply in French."}, {"role": "user", "content": "Hi?"}]
    assert render("{{ input }} / {{ expected }}", "plain", expected="ref") == "plain / ref"


def test_a_missing_field_names_the_field_and_the_item() -> None:
    with pytest.raises(TemplateError) as caught:
        render_messages(prompt_spec(prompt="{{ input.question }} ({{ input.order_id }})"), {"question": "Hi?"},
                        item_id="item-42")
    message = str(caught.value)
    assert "'order_id'" in message and "item-42" in message and "question" in message


def test_a_missing_field_of_a_text_input_says_the_input_is_text() -> None:
    with pytest.raises(TemplateError, match="input is str"):
        render("{{ input.question }}", "where is my parcel?", item_id="i1")


def test_the_sandbox_refuses_unsafe_attributes() -> None:
    with pytest.raises(TemplateError):
        render("{{ input.__class__.__mro__[1].__subclasses__() }}", {"q": 1})


def test_an_unknown_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Cannot import"):
        resolve_task("no_such_module_here:run")
    with pytest.raises(ConfigError, match="has no function"):
        resolve_task("tests.test_variants:missing")


# --- Versions ---------------------------------------------------------------------------------------


def test_saving_versions_a_variant_by_its_config(db_url: str) -> None:
    first = save_variant(db_url, prompt_spec(), created_by="ada")
    same = save_variant(db_url, prompt_spec(params={"temperature": 0.2}, evaluators=("exact-match",)))
    changed = save_variant(db_url, prompt_spec(params={"temperature": 0.7}))
    assert (first.version, first.created) == (1, True)
    assert (same.id, same.version, same.created) == (first.id, 1, False)  # evaluators are not the variant
    assert (changed.version, changed.created) == (2, True)
    assert get_variant(db_url, "support").version == 2
    assert get_variant(db_url, "support", 1).config["params"] == {"temperature": 0.2}
    assert [v.version for v in variant_versions(db_url, "support")] == [1, 2]
    save_variant(db_url, VariantSpec(name="rag", kind="code", task="tests.test_variants:retrieve_top",
                                     params={"top_k": 3}))
    assert [(v.name, v.version) for v in list_variants(db_url)] == [("rag", 1), ("support", 2)]
    assert get_variant(db_url, "support", 1).spec == prompt_spec()
    with pytest.raises(NotFound):
        get_variant(db_url, "support", 9)


# --- Change one variable ------------------------------------------------------------------------------


def test_one_change_gives_no_warning() -> None:
    diff = diff_variants(prompt_spec(), prompt_spec(model="openai:gpt-4o"))
    assert diff.fields == ["model"]
    assert (diff.changes[0].before, diff.changes[0].after) == ("openai:gpt-4o-mini", "openai:gpt-4o")
    assert diff.warning is None


def test_more_than_one_change_warns() -> None:
    v1 = datetime(2026, 11, 1, tzinfo=UTC)
    v2 = datetime(2026, 11, 2, tzinfo=UTC)
    diff = diff_variants(prompt_spec(), prompt_spec(params={"temperature": 0.2, "top_p": 0.9}), v1, v2)
    assert diff.fields == ["params.top_p", "dataset version"]
    assert diff.warning is not None and "2 things changed" in diff.warning and "params.top_p" in diff.warning


def test_diff_reads_stored_variant_json_and_same_dataset_version() -> None:
    v1 = datetime(2026, 11, 1, tzinfo=UTC)
    stored = {"name": "support", "version": 1, **prompt_spec().config}
    assert diff_variants(stored, prompt_spec(), v1, v1).fields == []
    code = VariantSpec(name="rag", kind="code", task="tests.test_variants:retrieve_top", params={"top_k": 3})
    assert diff_variants(prompt_spec(), code).fields == ["kind", "model", "system", "prompt", "task",
                                                         "params.temperature", "params.top_k"]
