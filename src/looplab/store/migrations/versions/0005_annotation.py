"""annotation: the order of queue items, annotations (labels, skips, adjudications), queue rules

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 20:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.Integer(), server_default='0', nullable=False))

    op.create_table('annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_item_id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('values_json', _json(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('corrected_output_json', _json(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('label', 'skip', 'adjudication')", name=op.f('ck_annotations_kind')),
    sa.ForeignKeyConstraint(['queue_id'], ['annotation_queues.id'], name=op.f('fk_annotations_queue_id_annotation_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_item_id'], ['queue_items.id'], name=op.f('fk_annotations_queue_item_id_queue_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations')),
    sa.UniqueConstraint('queue_item_id', 'author', 'kind', name=op.f('uq_annotations_queue_item_id'))
    )
    op.create_index('ix_annotations_queue_author', 'annotations', ['queue_id', 'author', 'created_at'], unique=False)
    op.create_index(op.f('ix_annotations_trace_id'), 'annotations', ['trace_id'], unique=False)

    op.create_table('queue_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('filter_json', _json(), nullable=False),
    sa.Column('sample_rate', sa.Float(), nullable=False),
    sa.Column('stratify_by', sa.String(length=32), nullable=True),
    sa.Column('strata_json', _json(), nullable=True),
    sa.Column('cursor_start_time', sa.DateTime(), nullable=True),
    sa.Column('cursor_trace_id', sa.String(length=64), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_run_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['queue_id'], ['annotation_queues.id'], name=op.f('fk_queue_rules_queue_id_annotation_queues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_rules'))
    )
    op.create_index(op.f('ix_queue_rules_queue_id'), 'queue_rules', ['queue_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_queue_rules_queue_id'), table_name='queue_rules')
    op.drop_table('queue_rules')
    op.drop_index(op.f('ix_annotations_trace_id'), table_name='annotations')
    op.drop_index('ix_annotations_queue_author', table_name='annotations')
    op.drop_table('annotations')
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.drop_column('position')
