"""Score configs: validation per data type, turning what people enter into scores, manual scores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from looplab.annotation.score_configs import (
    Category,
    ScoreConfigView,
    archive_score_config,
    as_view,
    create_score_config,
    get_score_config,
    list_score_configs,
    record_manual_score,
    score_fields,
    score_value,
    scores_for_label,
    unarchive_score_config,
    update_score_config,
    validate_score_config,
)
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session, write_session
from looplab.store.ingest import insert_traces
from looplab.store.models import Score, ScoreConfig

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "score_configs.yaml"
TRACE_ID = "a" * 32

NUMERIC = validate_score_config("helpfulness", "numeric", min_value=0, max_value=1, step=0.1)
SCALE = validate_score_config("stars", "numeric", min_value=1, max_value=5, step=1)
CORRECTNESS = validate_score_config("correctness", "categorical", categories=[
    {"label": "correct", "value": 1}, {"label": "partially_correct", "value": 0.5}, {"label": "incorrect", "value": 0}])
TONE = validate_score_config("tone", "categorical", categories=[
    {"label": "friendly", "value": None}, {"label": "curt", "value": None}])
THUMBS = validate_score_config("thumbs", "boolean")
NOTES = validate_score_config("notes", "text", description="Why the reply is wrong.")


def add_trace(url: str, trace_id: str = TRACE_ID) -> None:
    now = datetime.now(timezone.utc)
    insert_traces(url, [{"trace_id": trace_id, "name": "chat", "start_time": now.isoformat(),
                         "end_time": (now + timedelta(seconds=1)).isoformat(), "spans": []}])


def scores(url: str) -> list[Score]:
    with read_session(url) as session:
        rows = list(session.scalars(select(Score).order_by(Score.name)))
        session.expunge_all()
    return rows


# --- Validation -----------------------------------------------------------------------------------


def test_the_sample_configs_are_valid() -> None:
    for config in yaml.safe_load(SAMPLE.read_text(encoding="utf-8")):
        view = validate_score_config(config["name"], config["data_type"], min_value=config.get("min_value"),
                                     max_value=config.get("max_value"), step=config.get("step"),
                                     categories=config.get("categories"), description=config.get("description"))
        assert view.name == config["name"]


@pytest.mark.parametrize(("name", "data_type", "fields", "message"), [
    ("", "numeric", {}, "needs a name"),
    ("x", "stars", {}, "unknown data type 'stars'"),
    ("x", "numeric", {"min_value": 1, "max_value": 1}, "minimum \\(1\\) must be less than the maximum \\(1\\)"),
    ("x", "numeric", {"min_value": 5, "max_value": 1}, "must be less than"),
    ("x", "numeric", {"min_value": 0, "max_value": 1, "step": 0}, "step must be greater than 0"),
    ("x", "numeric", {"step": -1}, "step must be greater than 0"),
    ("x", "numeric", {"min_value": 0, "max_value": 1, "step": 2}, "larger than the range"),
    ("x", "numeric", {"min_value": "low"}, "minimum must be a number"),
    ("x", "numeric", {"max_value": float("inf")}, "finite"),
    ("x", "categorical", {"categories": [{"label": "only"}]}, "at least two options; it has 1"),
    ("x", "categorical", {"categories": []}, "at least two options; it has 0"),
    ("x", "categorical", {"categories": [{"label": "a"}, {"label": "A"}]}, "'A' appears twice"),
    ("x", "categorical", {"categories": [{"label": "a", "value": 1}, {"label": "b"}]}, "give every option a value"),
    ("x", "categorical", {"categories": [{"label": "a"}, {"label": "", "value": 2}]}, "has a value but no label"),
    ("x", "categorical", {"categories": [{"label": "a"}, {"label": "b", "value": "high"}]}, "must be a number"),
])
def test_invalid_configs_get_clear_messages(name: str, data_type: str, fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_score_config(name, data_type, **fields)


def test_validation_normalises() -> None:
    assert THUMBS.min_value == 0 and THUMBS.max_value == 1 and THUMBS.step == 1
    assert NOTES.min_value is None and NOTES.categories == ()
    # Empty rows of the options editor are dropped; labels are trimmed.
    view = validate_score_config(" tone ", "categorical", categories=[
        {"label": " friendly "}, {"label": None, "value": None}, "curt", Category("neutral")])
    assert view.name == "tone" and view.labels == ["friendly", "curt", "neutral"] and not view.ordered
    assert validate_score_config("open", "numeric").summary() == "-∞ to ∞"
    assert NUMERIC.summary() == "0 to 1, step 0.1"
    assert CORRECTNESS.summary() == "correct (1), partially_correct (0.5), incorrect (0)"


# --- From raw input to (value, label) -------------------------------------------------------------


@pytest.mark.parametrize(("config", "raw", "expected"), [
    (NUMERIC, 0.3, (0.3, None)),
    (NUMERIC, "0.7", (0.7, None)),
    (NUMERIC, 0, (0.0, None)),
    (NUMERIC, 1, (1.0, None)),
    (SCALE, 4, (4.0, None)),
    (CORRECTNESS, "partially_correct", (0.5, "partially_correct")),
    (CORRECTNESS, " Correct ", (1.0, "correct")),
    (TONE, "curt", (None, "curt")),
    (THUMBS, True, (1.0, "true")),
    (THUMBS, False, (0.0, "false")),
    (THUMBS, 0, (0.0, "false")),
    (THUMBS, "yes", (1.0, "true")),
    (NOTES, "It invented a tracking number.", (None, None)),
])
def test_score_value_per_type(config: ScoreConfigView, raw: object, expected: tuple) -> None:
    assert score_value(config, raw) == expected


@pytest.mark.parametrize(("config", "raw", "message"), [
    (NUMERIC, 1.5, "helpfulness must be between 0 and 1; got 1.5"),
    (NUMERIC, -0.1, "between 0 and 1"),
    (NUMERIC, 0.35, "steps of 0.1 from 0"),
    (NUMERIC, "lots", "'lots' is not a number"),
    (NUMERIC, True, "give a number"),
    (NUMERIC, None, "no value given"),
    (SCALE, 0, "between 1 and 5"),
    (SCALE, 2.5, "steps of 1 from 1"),
    (CORRECTNESS, "mostly", "must be one of correct, partially_correct, incorrect; got 'mostly'"),
    (THUMBS, 2, "yes or no"),
    (THUMBS, "maybe", "yes or no"),
    (NOTES, "   ", "no value given"),
    (NOTES, 3, "free text"),
])
def test_score_value_rejects_clearly(config: ScoreConfigView, raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        score_value(config, raw)


def test_open_ranges() -> None:
    at_least = validate_score_config("latency_ok", "numeric", min_value=0)
    assert score_value(at_least, 1e6) == (1e6, None)
    with pytest.raises(ConfigError, match="at least 0"):
        score_value(at_least, -1)


def test_text_goes_to_the_comment() -> None:
    assert score_fields(NOTES, " wrong date ").comment == "wrong date"
    assert score_fields(NOTES, "wrong date", "see ticket").comment == "wrong date\n\nsee ticket"
    assert score_fields(CORRECTNESS, "correct", " fine ").comment == "fine"


def test_scores_for_label_checks_everything_first() -> None:
    configs = [NUMERIC, CORRECTNESS, NOTES, THUMBS]
    rows = scores_for_label(configs, {"helpfulness": 0.8, "correctness": "incorrect", "notes": "made up",
                                      "thumbs": None}, trace_id=TRACE_ID, author="ada", comment="overall")
    assert [(r.name, r.value, r.label, r.comment, r.source, r.author) for r in rows] == [
        ("helpfulness", 0.8, None, "overall", "human", "ada"),
        ("correctness", 0.0, "incorrect", "overall", "human", "ada"),
        ("notes", None, None, "made up", "human", "ada"),
    ]
    with pytest.raises(ConfigError, match="helpfulness must be between"):
        scores_for_label(configs, {"correctness": "correct", "helpfulness": 3}, trace_id=TRACE_ID, author="ada")
    with pytest.raises(ConfigError, match="No score config named vibes"):
        scores_for_label(configs, {"vibes": 1}, trace_id=TRACE_ID, author="ada")


# --- Stored configs -------------------------------------------------------------------------------


def test_create_list_get(db_url: str) -> None:
    created = create_score_config(db_url, "correctness", "categorical", categories=[
        {"label": "correct", "value": 1}, {"label": "incorrect", "value": 0}], description="Is it **true**?")
    create_score_config(db_url, "helpfulness", "numeric", min_value=0, max_value=1, step=0.01)
    assert created.id is not None and created.created_at is not None
    assert [c.name for c in list_score_configs(db_url)] == ["correctness", "helpfulness"]
    again = get_score_config(db_url, "correctness")
    assert again == get_score_config(db_url, created.id) == created
    assert again.categories == (Category("correct", 1.0), Category("incorrect", 0.0))
    with read_session(db_url) as session:
        row = session.scalar(select(ScoreConfig).where(ScoreConfig.name == "correctness"))
        assert row.categories_json == [{"label": "correct", "value": 1.0}, {"label": "incorrect", "value": 0.0}]
        assert as_view(row) == created
    with pytest.raises(NotFound):
        get_score_config(db_url, "nope")


def test_bad_configs_write_nothing(db_url: str) -> None:
    create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5, step=1)
    with pytest.raises(ConfigError, match="already a score config named 'stars'"):
        create_score_config(db_url, "stars", "boolean")
    with pytest.raises(ConfigError, match="must be less than"):
        create_score_config(db_url, "other", "numeric", min_value=3, max_value=1)
    assert [c.name for c in list_score_configs(db_url, include_archived=True)] == ["stars"]


def test_update(db_url: str) -> None:
    config = create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5, step=1)
    create_score_config(db_url, "tone", "categorical", categories=["friendly", "curt"])
    updated = update_score_config(db_url, config.id, max_value=10, description="More stars")
    assert (updated.min_value, updated.max_value, updated.step, updated.description) == (1, 10, 1, "More stars")
    with pytest.raises(ConfigError, match="must be less than"):
        update_score_config(db_url, config.id, min_value=20)
    with pytest.raises(ConfigError, match="already a score config named 'tone'"):
        update_score_config(db_url, config.id, name="tone")
    assert get_score_config(db_url, config.id) == updated  # nothing half-written
    # No scores yet: name and type may still change.
    renamed = update_score_config(db_url, config.id, name="rating", data_type="boolean")
    assert (renamed.name, renamed.data_type, renamed.max_value) == ("rating", "boolean", 1)
    with pytest.raises(NotFound):
        update_score_config(db_url, 999, name="x")


def test_a_config_with_scores_keeps_its_name_and_type(db_url: str) -> None:
    add_trace(db_url)
    config = create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5, step=1)
    record_manual_score(db_url, TRACE_ID, config, 4, "ada")
    with pytest.raises(ConfigError, match="already has scores, so its name cannot change"):
        update_score_config(db_url, config.id, name="rating")
    with pytest.raises(ConfigError, match="data type cannot change"):
        update_score_config(db_url, config.id, data_type="boolean")
    assert update_score_config(db_url, config.id, step=0.5).step == 0.5


def test_archive_and_unarchive(db_url: str) -> None:
    config = create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5)
    archive_score_config(db_url, config.id)
    assert list_score_configs(db_url) == []
    assert [c.archived for c in list_score_configs(db_url, include_archived=True)] == [True]
    with pytest.raises(ConfigError, match="archived: unarchive it instead"):
        create_score_config(db_url, "stars", "boolean")
    unarchive_score_config(db_url, config.id)
    assert [c.name for c in list_score_configs(db_url)] == ["stars"]


# --- Manual scores --------------------------------------------------------------------------------


def test_record_manual_score(db_url: str) -> None:
    add_trace(db_url)
    correctness = create_score_config(db_url, "correctness", "categorical", categories=[
        {"label": "correct", "value": 1}, {"label": "incorrect", "value": 0}])
    notes = create_score_config(db_url, "notes", "text")
    thumbs = create_score_config(db_url, "thumbs", "boolean")
    before = datetime.now(timezone.utc)
    first = record_manual_score(db_url, TRACE_ID, correctness, "incorrect", "ada", comment="wrong date")
    record_manual_score(db_url, TRACE_ID, "notes", "Quotes a 14-day window; policy says 30.", "bob")
    record_manual_score(db_url, TRACE_ID, thumbs.id, False, "ada")
    rows = scores(db_url)
    assert [(r.name, r.value, r.label, r.comment, r.source, r.author, r.config_id, r.trace_id) for r in rows] == [
        ("correctness", 0.0, "incorrect", "wrong date", "human", "ada", correctness.id, TRACE_ID),
        ("notes", None, None, "Quotes a 14-day window; policy says 30.", "human", "bob", notes.id, TRACE_ID),
        ("thumbs", 0.0, "false", None, "human", "ada", thumbs.id, TRACE_ID),
    ]
    assert rows[0].id == first
    assert all(r.created_at >= before - timedelta(seconds=1) for r in rows)


def test_manual_scores_are_checked(db_url: str) -> None:
    add_trace(db_url)
    stars = create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5, step=1)
    with pytest.raises(NotFound, match="no trace 'missing'"):
        record_manual_score(db_url, "missing", stars, 3, "ada")
    with pytest.raises(ConfigError, match="between 1 and 5"):
        record_manual_score(db_url, TRACE_ID, stars, 9, "ada")
    with pytest.raises(ConfigError, match="no value given"):
        record_manual_score(db_url, TRACE_ID, stars, None, "ada")
    with pytest.raises(ConfigError, match="needs its author"):
        record_manual_score(db_url, TRACE_ID, stars, 3, " ")
    with pytest.raises(NotFound, match="no score config 'vibes'"):
        record_manual_score(db_url, TRACE_ID, "vibes", 3, "ada")
    archive_score_config(db_url, stars.id)
    with pytest.raises(ConfigError, match="stars is archived"):
        record_manual_score(db_url, TRACE_ID, stars, 3, "ada")
    assert scores(db_url) == []


def test_scores_for_label_rows_can_be_stored(db_url: str) -> None:
    add_trace(db_url)
    create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5, step=1)
    with write_session(db_url) as session:
        configs = list(session.scalars(select(ScoreConfig)))
        config_id = configs[0].id
        session.add_all(scores_for_label(configs, {"stars": 5}, trace_id=TRACE_ID, author="ada",
                                         metadata={"queue": "triage"}))
    (row,) = scores(db_url)
    assert (row.value, row.metadata_json, row.config_id) == (5.0, {"queue": "triage"}, config_id)
