"""monitoring: covering indexes, so charts over a month read indexes, never trace or span rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:45:00

Trace and span rows carry kilobytes of payload; a monitoring query that touched them read the
whole table (a month of 200,000 traces took seconds). Each index below keeps its leading columns
and adds the columns the monitoring queries aggregate or filter on, so those queries are answered
from the index alone:

- ``ix_traces_start_measures`` replaces ``ix_traces_start_time``: the window's traces with their
  status, latency, tokens, cost and attributes (time series, summary, breakdowns, attention);
- ``ix_traces_name_start`` and ``ix_traces_user_start`` gain the same measures and the other
  attributes (filters and breakdowns by trace name and by user, and the two combined);
- ``ix_spans_kind_start`` and ``ix_spans_model_start`` gain the LLM span measures and the trace id
  (time to first token, the model breakdown, the model filter);
- ``ix_scores_trace_name`` gains source and value (score series, attention's score rules).

The number of indexes does not change; each entry is wider (bench/README.md has the figures).
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TRACE_MEASURES = ['status', 'duration_ms', 'input_tokens', 'output_tokens', 'cost_usd', 'error_count']
SPAN_MEASURES = ['provider', 'status', 'duration_ms', 'ttft_ms', 'input_tokens', 'output_tokens', 'cost_usd',
                 'trace_id']

# (table, index, columns before, columns after)
CHANGES = [
    ('traces', 'ix_traces_start_time', ['start_time'], None),
    ('traces', 'ix_traces_start_measures', None,
     ['start_time', *TRACE_MEASURES, 'name', 'release', 'environment', 'user_id', 'session_id', 'id']),
    ('traces', 'ix_traces_name_start', ['name', 'start_time'],
     ['name', 'start_time', *TRACE_MEASURES, 'user_id', 'release', 'environment', 'id']),
    ('traces', 'ix_traces_user_start', ['user_id', 'start_time'],
     ['user_id', 'start_time', *TRACE_MEASURES, 'name', 'release', 'environment', 'id']),
    ('spans', 'ix_spans_kind_start', ['kind', 'start_time'], ['kind', 'start_time', 'model', *SPAN_MEASURES]),
    ('spans', 'ix_spans_model_start', ['model', 'start_time'], ['model', 'start_time', 'kind', *SPAN_MEASURES]),
    ('scores', 'ix_scores_trace_name', ['trace_id', 'name'], ['trace_id', 'name', 'source', 'value']),
]


def upgrade() -> None:
    for table, name, old, new in CHANGES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            if old is not None:
                batch_op.drop_index(name)
            if new is not None:
                batch_op.create_index(name, new, unique=False)


def downgrade() -> None:
    for table, name, old, new in reversed(CHANGES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if new is not None:
                batch_op.drop_index(name)
            if old is not None:
                batch_op.create_index(name, old, unique=False)
