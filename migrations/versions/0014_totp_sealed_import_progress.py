"""editors' TOTP secrets sealed with the TOTP key; import jobs' last progress

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 12:40:00

Existing TOTP secrets are encrypted here with the key the app would use
(NEWSLETTER_TOTP_KEY, else derived from NEWSLETTER_SECRET_KEY), so run the upgrade
with the same settings as the app. A running import gets its progress time now, so
the stalled-import sweeper judges it from the upgrade on.
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet
from flask import current_app

from newsletter.config import totp_keys


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

FERNET_PREFIX = 'gAAAAA'  # every Fernet token starts so; a base32 secret never does


def _keys() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in totp_keys(current_app.config)])


def _rewrite_secrets(change) -> None:
    connection = op.get_bind()
    editors = sa.table('editors', sa.column('id', sa.Integer),
                       sa.column('totp_secret', sa.String))
    rows = connection.execute(sa.select(editors.c.id, editors.c.totp_secret)
                              .where(editors.c.totp_secret.is_not(None))).all()
    for editor_id, value in rows:
        new = change(value)
        if new != value:
            connection.execute(editors.update().where(editors.c.id == editor_id)
                               .values(totp_secret=new))


def upgrade():
    with op.batch_alter_table('editors', schema=None) as batch_op:
        batch_op.alter_column('totp_secret', existing_type=sa.String(length=64),
                              type_=sa.String(length=255), existing_nullable=True)
    keys = _keys()
    _rewrite_secrets(lambda value: value if value.startswith(FERNET_PREFIX)
                     else keys.encrypt(value.encode()).decode())
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(timezone=True),
                                      nullable=True))
    import_jobs = sa.table('import_jobs', sa.column('status', sa.String),
                           sa.column('progress_at', sa.DateTime(timezone=True)))
    op.get_bind().execute(import_jobs.update().where(import_jobs.c.status == 'running')
                          .values(progress_at=datetime.now(UTC)))


def downgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('progress_at')
    keys = _keys()
    _rewrite_secrets(lambda value: keys.decrypt(value.encode()).decode()
                     if value.startswith(FERNET_PREFIX) else value)
    with op.batch_alter_table('editors', schema=None) as batch_op:
        batch_op.alter_column('totp_secret', existing_type=sa.String(length=255),
                              type_=sa.String(length=64), existing_nullable=True)
