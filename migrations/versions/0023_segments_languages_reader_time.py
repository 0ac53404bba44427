"""segments, reader attributes, zones and languages; issues to a segment, in reader time

Revision ID: 0023
Revises: 0020
Create Date: 2026-12-03 15:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'segments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('conditions', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    with op.batch_alter_table('subscribers') as batch:
        batch.add_column(sa.Column('attributes', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('language', sa.String(length=16), nullable=True))
    with op.batch_alter_table('subscribe_requests') as batch:
        batch.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('language', sa.String(length=16), nullable=True))
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('not_before', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('digests') as batch:
        batch.add_column(sa.Column('segment_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('segment_only', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('reader_local_time', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('translations', sa.JSON(), nullable=True))
        batch.create_foreign_key('fk_digests_segment_id', 'segments', ['segment_id'], ['id'])
    with op.batch_alter_table('digest_variants') as batch:
        batch.add_column(sa.Column('language', sa.String(length=16), nullable=True))
    with op.batch_alter_table('articles') as batch:
        batch.add_column(sa.Column('language', sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table('articles') as batch:
        batch.drop_column('language')
    with op.batch_alter_table('digest_variants') as batch:
        batch.drop_column('language')
    with op.batch_alter_table('digests') as batch:
        batch.drop_constraint('fk_digests_segment_id', type_='foreignkey')
        batch.drop_column('translations')
        batch.drop_column('reader_local_time')
        batch.drop_column('segment_only')
        batch.drop_column('segment_id')
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('not_before')
    with op.batch_alter_table('subscribe_requests') as batch:
        batch.drop_column('language')
        batch.drop_column('timezone')
    with op.batch_alter_table('subscribers') as batch:
        batch.drop_column('language')
        batch.drop_column('timezone')
        batch.drop_column('attributes')
    op.drop_table('segments')
