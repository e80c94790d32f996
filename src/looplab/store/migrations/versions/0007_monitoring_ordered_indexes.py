"""monitoring: indexes that give a month's percentiles, releases and providers in index order

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 21:00:00

A 30-day Monitoring page missed its 300 ms targets where SQLite had to sort (or keep a heap of)
a month of rows: percentiles per day and for the whole window, the release breakdown, the list
of providers. Each index below hands those rows over already in the order wanted:

- ``ix_traces_day_duration``: each UTC day's trace durations in order (the day is
  ``substr(start_time, 1, 10)`` on SQLite, ``CAST(start_time AS DATE)`` elsewhere): a day's
  median is a walk of half the day's entries, no sort (latency series with day buckets);
- ``ix_traces_duration_ms`` gains ``start_time``: a month's median and p95 walk the durations in
  order and test the window in the index entry (summary);
- ``ix_traces_release_start`` (release, start_time, measures, id): the release breakdown reads one
  range a release, like names and users;
- ``ix_spans_llm_day_ttft``, partial (LLM calls with a time to first token): each day's times to
  first token in order, with the model, provider and trace id that filters test;
- ``ix_spans_provider_start``, partial (spans with a provider): the providers seen in a window by
  a few seeks instead of reading every span of it.

The two span indexes are partial, so the tracing writer updates them for LLM calls only.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TRACE_MEASURES = ['status', 'duration_ms', 'input_tokens', 'output_tokens', 'cost_usd', 'error_count']
LLM_WITH_TTFT = "kind = 'llm' AND ttft_ms IS NOT NULL"
WITH_PROVIDER = "provider IS NOT NULL"


def _day() -> sa.TextClause:
    """The UTC day of ``start_time``, exactly as ``looplab.store.models.utc_day`` writes it."""
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("substr(start_time, 1, 10)")
    return sa.text("CAST(start_time AS DATE)")


def upgrade() -> None:
    op.drop_index('ix_traces_duration_ms', table_name='traces')
    op.create_index('ix_traces_duration_ms', 'traces', ['duration_ms', 'start_time'], unique=False)
    op.create_index('ix_traces_day_duration', 'traces', [_day(), 'duration_ms'], unique=False)
    op.create_index('ix_traces_release_start', 'traces', ['release', 'start_time', *TRACE_MEASURES, 'id'],
                    unique=False)
    op.create_index('ix_spans_llm_day_ttft', 'spans', [_day(), 'ttft_ms', 'model', 'provider', 'trace_id'],
                    unique=False, sqlite_where=sa.text(LLM_WITH_TTFT), postgresql_where=sa.text(LLM_WITH_TTFT))
    op.create_index('ix_spans_provider_start', 'spans', ['provider', 'start_time'], unique=False,
                    sqlite_where=sa.text(WITH_PROVIDER), postgresql_where=sa.text(WITH_PROVIDER))


def downgrade() -> None:
    op.drop_index('ix_spans_provider_start', table_name='spans')
    op.drop_index('ix_spans_llm_day_ttft', table_name='spans')
    op.drop_index('ix_traces_release_start', table_name='traces')
    op.drop_index('ix_traces_day_duration', table_name='traces')
    op.drop_index('ix_traces_duration_ms', table_name='traces')
    op.create_index('ix_traces_duration_ms', 'traces', ['duration_ms'], unique=False)
