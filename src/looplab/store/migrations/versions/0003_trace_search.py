"""trace explorer: an index for sorting traces by cost; an FTS5 search index (SQLite)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:30:00

No trigger fills the search index: ``looplab.explorer.traces.update_search_index`` catches it up
(by the traces table's rowid) when a search runs, so the tracing writer pays nothing for it.
The search index starts empty, also on a database that already holds traces: filling it here would
hold the write lock for as long as that takes. PostgreSQL searches without an index (ILIKE),
and so does a SQLite built without FTS5: for them this migration only adds the cost index.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.create_index('ix_traces_cost_usd', ['cost_usd'], unique=False)
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    try:
        with bind.begin_nested():
            # rowid: the trace's rowid in ``traces``; trace_id checks that it still names the same trace.
            op.execute(
                "CREATE VIRTUAL TABLE trace_search USING fts5("
                "trace_id UNINDEXED, input, output, steps, tokenize = 'unicode61 remove_diacritics 2')"
            )
    except sa.exc.OperationalError as err:
        if "fts5" not in str(err):
            raise


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS trace_search")
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.drop_index('ix_traces_cost_usd')
