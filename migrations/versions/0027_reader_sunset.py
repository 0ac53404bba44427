"""the sunset policy: each reader's place in it, which issues tracked readers, and an
index on a reader's deliveries

Revision ID: 0027
Revises: 0028
Create Date: 2026-12-03 19:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0027'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'reader_sunsets',
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.Enum('active', 'reengaging', 'paused', name='sunset_state',
                                   native_enum=False, length=32), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('subscriber_id'),
    )
    op.create_index('ix_reader_sunsets_state', 'reader_sunsets', ['state'])
    # The policy reads each reader's deliveries; so do their page, export and erasure.
    op.create_index('ix_deliveries_subscriber', 'deliveries', ['subscriber_id'])
    # Issues sent before this never carried a tracked reader id that sunset may trust.
    with op.batch_alter_table('digests') as batch:
        batch.add_column(sa.Column('readers_tracked', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('digests') as batch:
        batch.drop_column('readers_tracked')
    op.drop_index('ix_deliveries_subscriber', table_name='deliveries')
    op.drop_index('ix_reader_sunsets_state', table_name='reader_sunsets')
    op.drop_table('reader_sunsets')
