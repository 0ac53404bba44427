"""articles keep the Markdown an editor wrote; import reports list duplicates

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 21:20:00

Existing articles (from feeds, the API, files) are HTML only: the column stays empty.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_markdown', sa.Text(), nullable=True))
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duplicate_sample', sa.JSON(), nullable=False,
                                      server_default='[]'))


def downgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('duplicate_sample')
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_column('body_markdown')
