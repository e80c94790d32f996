"""monitoring: per-day rollups of LLM calls, kept true by triggers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 08:10:00

A 30-day model breakdown read 400,000 LLM calls three times (totals, p95, scores by model) and
took half a second. ``llm_rollups`` and ``llm_score_rollups`` sum each closed UTC day's LLM
calls up per (trace name, model); ``looplab.monitoring.rollups`` builds a day the
first time a breakdown needs it, and the breakdown adds the days up.

``rollup_days`` lists the days whose sums are true. The triggers below delete a day's row when
something its sums depend on changes: an LLM call of that day (inserted, changed or deleted), a
numeric score of a trace that called a model that day, or the name of such a trace. The next
breakdown then builds the day again. An insert into today (the database's clock) fires nothing,
so the tracing writer's hot path pays one comparison per span; rollups are only built for days
that ended an hour ago or more.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# SQLite: timestamps are ISO text, a day is its first ten characters; 'now' holds for a statement.
_SQLITE_TODAY = "strftime('%Y-%m-%d', 'now')"
_SQLITE_DAYS_OF = ("DELETE FROM rollup_days WHERE day IN "
                   "(SELECT substr(start_time, 1, 10) FROM spans WHERE trace_id {ids} AND kind = 'llm')")
_SQLITE_TRIGGERS = {
    "rollups_span_insert": f"""AFTER INSERT ON spans
        WHEN NEW.kind = 'llm' AND NEW.start_time < {_SQLITE_TODAY}
        BEGIN DELETE FROM rollup_days WHERE day = substr(NEW.start_time, 1, 10); END""",
    "rollups_span_update": """AFTER UPDATE OF trace_id, kind, start_time, model, status, duration_ms,
        input_tokens, output_tokens, cost_usd ON spans
        WHEN OLD.kind = 'llm' OR NEW.kind = 'llm'
        BEGIN DELETE FROM rollup_days WHERE day IN (substr(OLD.start_time, 1, 10), substr(NEW.start_time, 1, 10));
        END""",
    "rollups_span_delete": f"""AFTER DELETE ON spans
        WHEN OLD.kind = 'llm' AND OLD.start_time < {_SQLITE_TODAY}
        BEGIN DELETE FROM rollup_days WHERE day = substr(OLD.start_time, 1, 10); END""",
    "rollups_trace_insert": f"""AFTER INSERT ON traces WHEN NEW.start_time < {_SQLITE_TODAY}
        BEGIN {_SQLITE_DAYS_OF.format(ids="= NEW.id")}; END""",
    "rollups_trace_update": f"""AFTER UPDATE OF id, name ON traces
        WHEN OLD.name IS NOT NEW.name OR OLD.id IS NOT NEW.id
        BEGIN {_SQLITE_DAYS_OF.format(ids="IN (OLD.id, NEW.id)")}; END""",
    "rollups_trace_delete": f"""AFTER DELETE ON traces WHEN OLD.start_time < {_SQLITE_TODAY}
        BEGIN {_SQLITE_DAYS_OF.format(ids="= OLD.id")}; END""",
    "rollups_score_insert": f"""AFTER INSERT ON scores WHEN NEW.trace_id IS NOT NULL AND NEW.value IS NOT NULL
        BEGIN {_SQLITE_DAYS_OF.format(ids="= NEW.trace_id")}; END""",
    "rollups_score_update": f"""AFTER UPDATE OF trace_id, name, value ON scores
        BEGIN {_SQLITE_DAYS_OF.format(ids="IN (OLD.trace_id, NEW.trace_id)")}; END""",
    "rollups_score_delete": f"""AFTER DELETE ON scores WHEN OLD.trace_id IS NOT NULL AND OLD.value IS NOT NULL
        BEGIN {_SQLITE_DAYS_OF.format(ids="= OLD.trace_id")}; END""",
}

# PostgreSQL: one function a table forgets the days of OLD and NEW; each trigger's WHEN says when.
# statement_timestamp(), not now(): a long transaction must not see yesterday as today.
_PG_TODAY = "CAST(statement_timestamp() AT TIME ZONE 'UTC' AS DATE)"
_PG_DAYS_OF = ("DELETE FROM rollup_days WHERE day IN "
               "(SELECT CAST(start_time AS DATE) FROM spans WHERE trace_id = {row}.{key} AND kind = 'llm');")
_PG_FUNCTIONS = {
    "looplab_rollups_span": ("DELETE FROM rollup_days WHERE day = CAST(OLD.start_time AS DATE);",
                             "DELETE FROM rollup_days WHERE day = CAST(NEW.start_time AS DATE);"),
    "looplab_rollups_trace": (_PG_DAYS_OF.format(row="OLD", key="id"), _PG_DAYS_OF.format(row="NEW", key="id")),
    "looplab_rollups_score": (_PG_DAYS_OF.format(row="OLD", key="trace_id"),
                              _PG_DAYS_OF.format(row="NEW", key="trace_id")),
}
_PG_TRIGGERS = {
    "rollups_span_insert": ("AFTER INSERT ON spans", f"NEW.kind = 'llm' AND NEW.start_time < {_PG_TODAY}",
                            "looplab_rollups_span"),
    "rollups_span_update": (("AFTER UPDATE OF trace_id, kind, start_time, model, status, duration_ms, "
                             "input_tokens, output_tokens, cost_usd ON spans"),
                            "OLD.kind = 'llm' OR NEW.kind = 'llm'", "looplab_rollups_span"),
    "rollups_span_delete": ("AFTER DELETE ON spans", f"OLD.kind = 'llm' AND OLD.start_time < {_PG_TODAY}",
                            "looplab_rollups_span"),
    "rollups_trace_insert": ("AFTER INSERT ON traces", f"NEW.start_time < {_PG_TODAY}", "looplab_rollups_trace"),
    "rollups_trace_update": ("AFTER UPDATE OF id, name ON traces",
                             "OLD.name IS DISTINCT FROM NEW.name OR OLD.id IS DISTINCT FROM NEW.id",
                             "looplab_rollups_trace"),
    "rollups_trace_delete": ("AFTER DELETE ON traces", f"OLD.start_time < {_PG_TODAY}", "looplab_rollups_trace"),
    "rollups_score_insert": ("AFTER INSERT ON scores", "NEW.trace_id IS NOT NULL AND NEW.value IS NOT NULL",
                             "looplab_rollups_score"),
    "rollups_score_update": ("AFTER UPDATE OF trace_id, name, value ON scores", "true", "looplab_rollups_score"),
    "rollups_score_delete": ("AFTER DELETE ON scores", "OLD.trace_id IS NOT NULL AND OLD.value IS NOT NULL",
                             "looplab_rollups_score"),
}


def upgrade() -> None:
    op.create_table('rollup_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('built_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_rollup_days'))
    )
    op.create_table('llm_rollups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('trace_name', sa.String(length=255), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=True),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('finished', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('latency_histogram', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_rollups'))
    )
    op.create_index(op.f('ix_llm_rollups_day'), 'llm_rollups', ['day'], unique=False)
    op.create_table('llm_score_rollups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('trace_name', sa.String(length=255), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=True),
    sa.Column('score_name', sa.String(length=255), nullable=False),
    sa.Column('total', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_score_rollups'))
    )
    op.create_index(op.f('ix_llm_score_rollups_day'), 'llm_score_rollups', ['day'], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
        return
    for name, (old, new) in _PG_FUNCTIONS.items():
        op.execute(f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP IN ('UPDATE', 'DELETE') THEN {old} END IF;
                IF TG_OP IN ('INSERT', 'UPDATE') THEN {new} END IF;
                RETURN NULL;
            END $$""")
    for name, (event, when, function) in _PG_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {function}()")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, (event, _, _) in _PG_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + ("" if sqlite else f" ON {event.split(' ON ')[-1]}"))
    if not sqlite:
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index(op.f('ix_llm_score_rollups_day'), table_name='llm_score_rollups')
    op.drop_table('llm_score_rollups')
    op.drop_index(op.f('ix_llm_rollups_day'), table_name='llm_rollups')
    op.drop_table('llm_rollups')
    op.drop_table('rollup_days')
