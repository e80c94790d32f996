"""attention rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attention_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('params_json', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('error', 'latency_above', 'latency_p95', 'negative_feedback', 'low_score', 'cost_outlier')", name=op.f('ck_attention_rules_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attention_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_attention_rules_name'))
    )


def downgrade() -> None:
    op.drop_table('attention_rules')
