"""experiments: saved variants, worker runs (pid, heartbeat, cancel), promoted baselines, decisions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 20:50:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
    op.create_table('variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('config_json', _json(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('prompt', 'code')", name=op.f('ck_variants_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_variants')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_variants_name'))
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('concurrency', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('worker_pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('promoted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('created_by', sa.String(length=255), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_experiments_variant_id_variants'), 'variants',
                                    ['variant_id'], ['id'], ondelete='SET NULL')
    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('baseline_id', sa.Integer(), nullable=True),
    sa.Column('dataset_version', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reasons_json', _json(), nullable=False),
    sa.Column('policy_json', _json(), nullable=False),
    sa.Column('summary_json', _json(), nullable=True),
    sa.Column('judge_versions_json', _json(), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("outcome IN ('ship', 'dont_ship')", name=op.f('ck_decisions_outcome')),
    sa.ForeignKeyConstraint(['baseline_id'], ['experiments.id'], name=op.f('fk_decisions_baseline_id_experiments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_decisions_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions'))
    )
    op.create_index(op.f('ix_decisions_experiment_id'), 'decisions', ['experiment_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_decisions_experiment_id'), table_name='decisions')
    op.drop_table('decisions')
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_experiments_variant_id_variants'), type_='foreignkey')
        for column in ('created_by', 'promoted_at', 'cancel_requested', 'heartbeat_at', 'worker_pid',
                       'concurrency', 'variant_id'):
            batch_op.drop_column(column)
    op.drop_table('variants')
