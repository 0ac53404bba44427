"""clicks: verdicts on an issue's tracked links (and opens), and their daily folds

Revision ID: 0020
Revises: 0022
Create Date: 2026-12-03 15:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'clicks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('record_key', sa.String(length=24), nullable=False),
        sa.Column('digest_id', sa.Integer(), nullable=False),
        sa.Column('variant_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.Enum('click', 'open', name='click_kind', native_enum=False,
                                  length=32), nullable=False),
        sa.Column('link', sa.Integer(), nullable=False),
        sa.Column('copy', sa.Integer(), nullable=False),
        sa.Column('verdict', sa.Enum('human', 'bot', 'proxy', name='click_verdict',
                                     native_enum=False, length=32), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('record_key'),
    )
    op.create_index('ix_clicks_digest_at', 'clicks', ['digest_id', 'at'])
    op.create_index('ix_clicks_subscriber_id', 'clicks', ['subscriber_id'])
    op.create_table(
        'click_days',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('digest_id', sa.Integer(), nullable=False),
        sa.Column('variant_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.Enum('click', 'open', name='click_kind', native_enum=False,
                                  length=32), nullable=False),
        sa.Column('link', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('human', sa.Integer(), nullable=False),
        sa.Column('bot', sa.Integer(), nullable=False),
        sa.Column('proxy', sa.Integer(), nullable=False),
        sa.Column('human_copies', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('digest_id', 'variant_id', 'kind', 'link', 'day'),
    )
    op.create_index('ix_click_days_digest_id', 'click_days', ['digest_id'])


def downgrade():
    op.drop_table('click_days')
    op.drop_index('ix_clicks_subscriber_id', table_name='clicks')
    op.drop_index('ix_clicks_digest_at', table_name='clicks')
    op.drop_table('clicks')
