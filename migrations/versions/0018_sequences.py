"""sequences: named series of mails after a reader enters, each step a long-lived issue

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 15:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('digests') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=32), nullable=False,
                                   server_default='issue'))
    op.create_index('ix_subscribers_confirmed_at', 'subscribers', ['confirmed_at'])
    # When a reader chose a topic; choices made before count as long ago.
    with op.batch_alter_table('subscriber_topics') as batch:
        batch.add_column(sa.Column('chosen_at', sa.DateTime(timezone=True), nullable=False,
                                   server_default='2000-01-01 00:00:00'))
    op.create_table(
        'sequences',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('topic_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('entrants_seen_until', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['topic_id'], ['topics.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'sequence_steps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sequence_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('delay_seconds', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body_markdown', sa.Text(), nullable=False),
        sa.Column('body_html', sa.Text(), nullable=False),
        sa.Column('digest_id', sa.Integer(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id']),
        sa.ForeignKeyConstraint(['digest_id'], ['digests.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('digest_id'),
    )
    op.create_index('ix_sequence_steps_sequence_id', 'sequence_steps', ['sequence_id'])
    op.create_table(
        'sequence_enrolments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sequence_id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('passed_position', sa.Integer(), nullable=False),
        sa.Column('current_step_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id']),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id']),
        sa.ForeignKeyConstraint(['current_step_id'], ['sequence_steps.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sequence_id', 'subscriber_id'),
    )
    op.create_index('ix_sequence_enrolments_state', 'sequence_enrolments',
                    ['sequence_id', 'state'])
    op.create_index('ix_sequence_enrolments_subscriber_id', 'sequence_enrolments',
                    ['subscriber_id'])


def downgrade():
    op.drop_table('sequence_enrolments')
    op.drop_table('sequence_steps')
    op.drop_table('sequences')
    with op.batch_alter_table('digests') as batch:
        batch.drop_column('kind')
    with op.batch_alter_table('subscriber_topics') as batch:
        batch.drop_column('chosen_at')
    op.drop_index('ix_subscribers_confirmed_at', table_name='subscribers')
