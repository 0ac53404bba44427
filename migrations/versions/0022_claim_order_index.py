"""claim order index: the claim's ORDER BY id is served by the index, not a sort

Revision ID: 0022
Revises: 0024
Create Date: 2026-12-03 15:40:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0022'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade():
    # (digest_id, status, id): a claim reads its 100 rows in id order straight off
    # the index, however many rows are pending; (digest_id, status) is its prefix.
    op.create_index('ix_deliveries_digest_status_id', 'deliveries',
                    ['digest_id', 'status', 'id'])
    op.drop_index('ix_deliveries_digest_status', table_name='deliveries')
    # The pending rows alone, in id order: with fresh statistics PostgreSQL otherwise
    # walks the primary key past every row already sent (a third of a million-row
    # send: 250 ms per claim, against 11 ms on this index).
    op.create_index('ix_deliveries_pending', 'deliveries', ['digest_id', 'id'],
                    postgresql_where=sa.text("status = 'pending'"),
                    sqlite_where=sa.text("status = 'pending'"))


def downgrade():
    op.drop_index('ix_deliveries_pending', table_name='deliveries')
    op.create_index('ix_deliveries_digest_status', 'deliveries', ['digest_id', 'status'])
    op.drop_index('ix_deliveries_digest_status_id', table_name='deliveries')
