"""subscribers.unsubscribe_key: a random token for unsubscribe links instead of the row id

Revision ID: 0004
Revises: 0003
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

CHUNK = 1000


def upgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unsubscribe_key', sa.String(length=32), nullable=True))
    # Existing readers get their key here; secrets, not the database's random(), so
    # the keys cannot be predicted.
    connection = op.get_bind()
    subscribers = sa.table('subscribers', sa.column('id', sa.Integer),
                           sa.column('unsubscribe_key', sa.String))
    set_key = (sa.update(subscribers).where(subscribers.c.id == sa.bindparam('row_id'))
               .values(unsubscribe_key=sa.bindparam('key')))
    last = 0
    while True:
        ids = connection.execute(sa.select(subscribers.c.id).where(subscribers.c.id > last)
                                 .order_by(subscribers.c.id).limit(CHUNK)).scalars().all()
        if not ids:
            break
        connection.execute(set_key, [{'row_id': row_id, 'key': secrets.token_urlsafe(16)}
                                     for row_id in ids])
        last = ids[-1]
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.alter_column('unsubscribe_key', existing_type=sa.String(length=32),
                              nullable=False)
        batch_op.create_unique_constraint('uq_subscribers_unsubscribe_key', ['unsubscribe_key'])


def downgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_constraint('uq_subscribers_unsubscribe_key', type_='unique')
        batch_op.drop_column('unsubscribe_key')
