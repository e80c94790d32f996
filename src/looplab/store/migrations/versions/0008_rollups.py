"""monitoring: per-day rollups of traces and LLM calls, kept true by triggers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 08:10:00

A 30-day breakdown by model or trace name read every call or trace of the month for its totals,
again for its p95, and again for its scores: 350-800 ms. The tables below sum each closed UTC day
up once; ``looplab.monitoring.rollups`` builds a day the first time a breakdown needs it, and
breakdowns add the days up:

- ``trace_rollups`` / ``trace_score_rollups``: the day's traces per (name, release,
  environment, status), with a latency histogram, and the numeric scores of those traces;
- ``llm_rollups`` / ``llm_score_rollups``: the day's LLM calls per (trace name, model), with a
  latency histogram and how many recorded a time to first token, and the numeric scores of the
  traces that called the model that day.

``rollup_days`` lists the days whose sums are true. The triggers below delete a day's row when
something its sums depend on changes: an LLM call of that day changed or deleted, a deleted
trace that started that day or called a model that day, or a numeric score of such traces.
Spans and traces written (inserted, or upserted by OTLP ingest) are looplab's writers' to report
(``looplab.store.stale_days``): a trigger would cost every insert statement a statement journal
on SQLite. The next breakdown then builds the day again. Rollups are only built for days that
ended an hour ago or more.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_SPAN_COLUMNS = "trace_id, kind, start_time, model, status, duration_ms, input_tokens, output_tokens, cost_usd"


def _dialect() -> tuple[str, str]:
    """(the UTC day of a timestamp, with {} for it; today) in this database's SQL."""
    if op.get_bind().dialect.name == "sqlite":
        # Timestamps are ISO text: a day is its first ten characters; 'now' holds for a statement.
        return "substr({}, 1, 10)", "strftime('%Y-%m-%d', 'now')"
    # statement_timestamp(), not now(): a long transaction must not take yesterday for today.
    return "CAST({} AS DATE)", "CAST(statement_timestamp() AT TIME ZONE 'UTC' AS DATE)"


def _forget(row: str, table: str) -> str:
    """A statement deleting the ``rollup_days`` that a row (``OLD`` or ``NEW``) of ``table`` is in."""
    day, _ = _dialect()
    calls_of = f"SELECT {day.format('start_time')} FROM spans WHERE trace_id = {row}.{{}} AND kind = 'llm'"
    where = {
        "spans": f"day = {day.format(row + '.start_time')}",
        "traces": f"day = {day.format(row + '.start_time')} OR day IN ({calls_of.format('id')})",
        "scores": (f"day IN (SELECT {day.format('start_time')} FROM traces WHERE id = {row}.trace_id) "
                   f"OR day IN ({calls_of.format('trace_id')})"),
    }[table]
    return f"DELETE FROM rollup_days WHERE {where};"


def _triggers() -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """(name, table, event, condition, rows to forget) of each trigger."""
    _, today = _dialect()
    return [
        ("rollups_span_update", "spans", f"UPDATE OF {_SPAN_COLUMNS}", "OLD.kind = 'llm' OR NEW.kind = 'llm'",
         ("OLD", "NEW")),
        ("rollups_span_delete", "spans", "DELETE", f"OLD.kind = 'llm' AND OLD.start_time < {today}", ("OLD",)),
        # Spans are inserted, and traces inserted and updated, by looplab's writers, which forget
        # the days themselves (looplab.store.stale_days): on SQLite, a trigger makes every insert
        # statement keep a statement journal. A trace starts before its calls: one that started
        # today has no call on a closed day.
        ("rollups_trace_delete", "traces", "DELETE", f"OLD.start_time < {today}", ("OLD",)),
        ("rollups_score_insert", "scores", "INSERT", "NEW.trace_id IS NOT NULL AND NEW.value IS NOT NULL", ("NEW",)),
        ("rollups_score_update", "scores", "UPDATE OF trace_id, name, value", "true", ("OLD", "NEW")),
        ("rollups_score_delete", "scores", "DELETE", "OLD.trace_id IS NOT NULL AND OLD.value IS NOT NULL", ("OLD",)),
    ]


def _sums(name: str, keys: list[sa.Column], measures: list[sa.Column]) -> None:
    op.create_table(name,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    *keys, *measures,
    sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}'))
    )
    op.create_index(op.f(f'ix_{name}_day'), name, ['day'], unique=False)


def _trace_keys() -> list[sa.Column]:
    return [sa.Column('name', sa.String(length=255), nullable=True),
            sa.Column('release', sa.String(length=255), nullable=True),
            sa.Column('environment', sa.String(length=255), nullable=True),
            sa.Column('status', sa.String(length=16), nullable=False)]


def _llm_keys() -> list[sa.Column]:
    return [sa.Column('trace_name', sa.String(length=255), nullable=True),
            sa.Column('model', sa.String(length=255), nullable=True)]


def _measures(*counts: str) -> list[sa.Column]:
    return [*[sa.Column(name, sa.Integer(), nullable=False)
              for name in (*counts, 'finished', 'input_tokens', 'output_tokens')],
            sa.Column('cost_usd', sa.Float(), nullable=False),
            sa.Column('latency_histogram', sa.LargeBinary(), nullable=False)]


def _scores() -> list[sa.Column]:
    return [sa.Column('score_name', sa.String(length=255), nullable=False),
            sa.Column('total', sa.Float(), nullable=False), sa.Column('count', sa.Integer(), nullable=False)]


def upgrade() -> None:
    op.create_table('rollup_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('built_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_rollup_days'))
    )
    _sums('trace_rollups', _trace_keys(), _measures('traces'))
    _sums('trace_score_rollups', _trace_keys(), _scores())
    _sums('llm_rollups', _llm_keys(), _measures('calls', 'errors', 'with_ttft'))
    _sums('llm_score_rollups', _llm_keys(), _scores())
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, table, event, when, rows in _triggers():
        if sqlite:
            body = " ".join(_forget(row, table) for row in rows)
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} WHEN {when} BEGIN {body} END")
            continue
        # PostgreSQL: a trigger runs a function; each gets its own, forgetting what its rows name.
        op.execute(f"""CREATE FUNCTION looplab_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN {" ".join(_forget(row, table) for row in rows)} RETURN NULL; END $$""")
        op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW WHEN ({when}) "
                   f"EXECUTE FUNCTION looplab_{name}()")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, table, *_ in _triggers():
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + ("" if sqlite else f" ON {table}"))
        if not sqlite:
            op.execute(f"DROP FUNCTION IF EXISTS looplab_{name}()")
    for name in ('llm_score_rollups', 'llm_rollups', 'trace_score_rollups', 'trace_rollups'):
        op.drop_index(op.f(f'ix_{name}_day'), table_name=name)
        op.drop_table(name)
    op.drop_table('rollup_days')
