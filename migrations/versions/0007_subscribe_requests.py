"""subscribe requests, confirmation sends and locks (issue 7: the subscribe edge)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'subscribe_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=True),
        sa.Column('source', sa.Enum('form', 'api', 'import', 'one-click', 'link',
                                    name='consent_source', native_enum=False, length=32),
                  nullable=False),
        sa.Column('ip_address', sa.String(length=45), nullable=True),
        sa.Column('user_agent', sa.String(length=512), nullable=True),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscribe_requests_requested_at'),
                              ['requested_at'], unique=False)
    op.create_table(
        'confirmation_sends',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mailbox_key', sa.String(length=64), nullable=False),
        sa.Column('domain', sa.String(length=255), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('confirmation_sends', schema=None) as batch_op:
        batch_op.create_index('ix_confirmation_sends_mailbox', ['mailbox_key', 'sent_at'],
                              unique=False)
        batch_op.create_index('ix_confirmation_sends_domain', ['domain', 'sent_at'],
                              unique=False)
    op.create_table(
        'confirmation_locks',
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('locked_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )


def downgrade():
    op.drop_table('confirmation_locks')
    with op.batch_alter_table('confirmation_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_confirmation_sends_domain')
        batch_op.drop_index('ix_confirmation_sends_mailbox')
    op.drop_table('confirmation_sends')
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscribe_requests_requested_at'))
    op.drop_table('subscribe_requests')
