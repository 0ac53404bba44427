"""address changes decided by a worker, and undoable from the old address

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 12:30:00

An address change is a ``subscribe_requests`` row (kind ``address_change``, stored as a
plain string) naming the reader who asked; a confirmed change is an ``address_changes``
row whose undo key the notice to the old address carries.
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscriber_id', sa.Integer(), nullable=True))
    op.create_table(
        'address_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('old_email', sa.String(length=254), nullable=False),
        sa.Column('new_email', sa.String(length=254), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('undo_key', sa.String(length=32), nullable=False),
        sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notice_mail_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id']),
        sa.ForeignKeyConstraint(['notice_mail_id'], ['outbox_mails.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('undo_key'),
        sa.UniqueConstraint('notice_mail_id'),
    )
    with op.batch_alter_table('address_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_changes_subscriber_id'), ['subscriber_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('address_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_address_changes_subscriber_id'))
    op.drop_table('address_changes')
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.drop_column('subscriber_id')
