"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 16:07:26.887029
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('annotation_queues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('annotations_per_item', sa.Integer(), nullable=False),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('archived_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotation_queues')),
    sa.UniqueConstraint('name', name=op.f('uq_annotation_queues_name'))
    )
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('metadata_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('archived_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    op.create_table('score_configs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('data_type', sa.String(length=16), nullable=False),
    sa.Column('min_value', sa.Float(), nullable=True),
    sa.Column('max_value', sa.Float(), nullable=True),
    sa.Column('step', sa.Float(), nullable=True),
    sa.Column('categories_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('archived_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("data_type IN ('numeric', 'categorical', 'boolean', 'text')", name=op.f('ck_score_configs_data_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_configs')),
    sa.UniqueConstraint('name', name=op.f('uq_score_configs_name'))
    )
    op.create_table('spans',
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('start_time', sa.DateTime(), nullable=False),
    sa.Column('end_time', sa.DateTime(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('input_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('output_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('provider', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=True),
    sa.Column('params_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('finish_reason', sa.String(length=64), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('cached_tokens', sa.Integer(), nullable=True),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('pricing_source', sa.String(length=64), nullable=True),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attributes_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.CheckConstraint("kind IN ('llm', 'tool', 'retrieval', 'span', 'event', 'evaluator', 'embedding')", name=op.f('ck_spans_kind')),
    sa.CheckConstraint("status IN ('ok', 'error')", name=op.f('ck_spans_status')),
    sa.PrimaryKeyConstraint('trace_id', 'id', name=op.f('pk_spans'))
    )
    with op.batch_alter_table('spans', schema=None) as batch_op:
        batch_op.create_index('ix_spans_kind_start', ['kind', 'start_time'], unique=False)
        batch_op.create_index('ix_spans_model_start', ['model', 'start_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_spans_start_time'), ['start_time'], unique=False)

    op.create_table('trace_tags',
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('trace_id', 'tag', name=op.f('pk_trace_tags'))
    )
    with op.batch_alter_table('trace_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trace_tags_tag'), ['tag'], unique=False)

    op.create_table('traces',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('start_time', sa.DateTime(), nullable=False),
    sa.Column('end_time', sa.DateTime(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('session_id', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('release', sa.String(length=255), nullable=True),
    sa.Column('environment', sa.String(length=255), nullable=True),
    sa.Column('tags_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('metadata_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('input_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('output_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('span_count', sa.Integer(), nullable=False),
    sa.Column('error_count', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.CheckConstraint("status IN ('ok', 'error')", name=op.f('ck_traces_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_traces'))
    )
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_traces_duration_ms'), ['duration_ms'], unique=False)
        batch_op.create_index('ix_traces_name_start', ['name', 'start_time'], unique=False)
        batch_op.create_index('ix_traces_session_start', ['session_id', 'start_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_traces_start_time'), ['start_time'], unique=False)
        batch_op.create_index('ix_traces_status_start', ['status', 'start_time'], unique=False)
        batch_op.create_index('ix_traces_user_start', ['user_id', 'start_time'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('disabled_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("role IN ('admin', 'engineer', 'annotator')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('dataset_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('input_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('expected_output_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('metadata_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('source_trace_id', sa.String(length=64), nullable=True),
    sa.Column('source_span_id', sa.String(length=64), nullable=True),
    sa.Column('valid_from', sa.DateTime(), nullable=False),
    sa.Column('valid_to', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_dataset_items_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_items'))
    )
    with op.batch_alter_table('dataset_items', schema=None) as batch_op:
        batch_op.create_index('ix_dataset_items_dataset_valid', ['dataset_id', 'valid_from', 'valid_to'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_items_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_items_source_trace_id'), ['source_trace_id'], unique=False)

    op.create_table('evaluators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('config_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('score_config_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('archived_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('code', 'llm_judge')", name=op.f('ck_evaluators_kind')),
    sa.ForeignKeyConstraint(['score_config_id'], ['score_configs.id'], name=op.f('fk_evaluators_score_config_id_score_configs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluators')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_evaluators_name'))
    )
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('dataset_version', sa.DateTime(), nullable=False),
    sa.Column('variant_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('baseline_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('metadata_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'completed', 'failed', 'cancelled')", name=op.f('ck_experiments_status')),
    sa.ForeignKeyConstraint(['baseline_id'], ['experiments.id'], name=op.f('fk_experiments_baseline_id_experiments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_experiments_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiments')),
    sa.UniqueConstraint('name', name=op.f('uq_experiments_name'))
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiments_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_experiments_status'), ['status'], unique=False)

    op.create_table('queue_assignees',
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['queue_id'], ['annotation_queues.id'], name=op.f('fk_queue_assignees_queue_id_annotation_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_queue_assignees_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('queue_id', 'user_id', name=op.f('pk_queue_assignees'))
    )
    op.create_table('queue_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('leased_by', sa.String(length=255), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.Column('annotations_done', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'leased', 'done', 'skipped')", name=op.f('ck_queue_items_status')),
    sa.ForeignKeyConstraint(['queue_id'], ['annotation_queues.id'], name=op.f('fk_queue_items_queue_id_annotation_queues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_items')),
    sa.UniqueConstraint('queue_id', 'trace_id', name=op.f('uq_queue_items_queue_id'))
    )
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.create_index('ix_queue_items_queue_status', ['queue_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_items_trace_id'), ['trace_id'], unique=False)

    op.create_table('queue_score_configs',
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('score_config_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['queue_id'], ['annotation_queues.id'], name=op.f('fk_queue_score_configs_queue_id_annotation_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['score_config_id'], ['score_configs.id'], name=op.f('fk_queue_score_configs_score_config_id_score_configs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('queue_id', 'score_config_id', name=op.f('pk_queue_score_configs'))
    )
    op.create_table('experiment_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('dataset_item_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_item_row_id', sa.Integer(), nullable=True),
    sa.Column('trace_id', sa.String(length=64), nullable=True),
    sa.Column('output_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("status IN ('ok', 'error')", name=op.f('ck_experiment_items_status')),
    sa.ForeignKeyConstraint(['dataset_item_row_id'], ['dataset_items.id'], name=op.f('fk_experiment_items_dataset_item_row_id_dataset_items'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_experiment_items_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiment_items')),
    sa.UniqueConstraint('experiment_id', 'dataset_item_id', name=op.f('uq_experiment_items_experiment_id'))
    )
    with op.batch_alter_table('experiment_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiment_items_trace_id'), ['trace_id'], unique=False)

    op.create_table('scores',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=True),
    sa.Column('span_id', sa.String(length=64), nullable=True),
    sa.Column('experiment_item_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('label', sa.String(length=255), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('author', sa.String(length=255), nullable=True),
    sa.Column('config_id', sa.Integer(), nullable=True),
    sa.Column('evaluator_id', sa.Integer(), nullable=True),
    sa.Column('evaluator_version', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('metadata_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.CheckConstraint("source IN ('human', 'llm_judge', 'code', 'user_feedback')", name=op.f('ck_scores_source')),
    sa.ForeignKeyConstraint(['config_id'], ['score_configs.id'], name=op.f('fk_scores_config_id_score_configs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['evaluator_id'], ['evaluators.id'], name=op.f('fk_scores_evaluator_id_evaluators'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['experiment_item_id'], ['experiment_items.id'], name=op.f('fk_scores_experiment_item_id_experiment_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scores'))
    )
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scores_experiment_item_id'), ['experiment_item_id'], unique=False)
        batch_op.create_index('ix_scores_name_created', ['name', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_scores_source'), ['source'], unique=False)
        batch_op.create_index(batch_op.f('ix_scores_span_id'), ['span_id'], unique=False)
        batch_op.create_index('ix_scores_trace_name', ['trace_id', 'name'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_index('ix_scores_trace_name')
        batch_op.drop_index(batch_op.f('ix_scores_span_id'))
        batch_op.drop_index(batch_op.f('ix_scores_source'))
        batch_op.drop_index('ix_scores_name_created')
        batch_op.drop_index(batch_op.f('ix_scores_experiment_item_id'))

    op.drop_table('scores')
    with op.batch_alter_table('experiment_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_experiment_items_trace_id'))

    op.drop_table('experiment_items')
    op.drop_table('queue_score_configs')
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_queue_items_trace_id'))
        batch_op.drop_index('ix_queue_items_queue_status')

    op.drop_table('queue_items')
    op.drop_table('queue_assignees')
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_experiments_status'))
        batch_op.drop_index(batch_op.f('ix_experiments_dataset_id'))

    op.drop_table('experiments')
    op.drop_table('evaluators')
    with op.batch_alter_table('dataset_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_items_source_trace_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_items_item_id'))
        batch_op.drop_index('ix_dataset_items_dataset_valid')

    op.drop_table('dataset_items')
    op.drop_table('users')
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.drop_index('ix_traces_user_start')
        batch_op.drop_index('ix_traces_status_start')
        batch_op.drop_index(batch_op.f('ix_traces_start_time'))
        batch_op.drop_index('ix_traces_session_start')
        batch_op.drop_index('ix_traces_name_start')
        batch_op.drop_index(batch_op.f('ix_traces_duration_ms'))

    op.drop_table('traces')
    with op.batch_alter_table('trace_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trace_tags_tag'))

    op.drop_table('trace_tags')
    with op.batch_alter_table('spans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spans_start_time'))
        batch_op.drop_index('ix_spans_model_start')
        batch_op.drop_index('ix_spans_kind_start')

    op.drop_table('spans')
    op.drop_table('score_configs')
    op.drop_table('datasets')
    op.drop_table('annotation_queues')

