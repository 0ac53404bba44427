"""topics: what articles are about, what each reader chose, personal digests

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 21:20:00

Existing readers have no topics (= everything) and a weekly cadence; existing
issues become weekly (scheduled) or by hand, and their deliveries have no
variant (they were sent before copies differed).
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

CADENCE = sa.Enum('weekly', 'daily', name='cadence', native_enum=False, length=32)


def upgrade():
    op.create_table('topics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('feeds', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('article_topics',
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('manual', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], ),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], ),
    sa.PrimaryKeyConstraint('article_id', 'topic_id')
    )
    with op.batch_alter_table('article_topics', schema=None) as batch_op:
        batch_op.create_index('ix_article_topics_topic_id', ['topic_id'], unique=False)
    op.create_table('subscriber_topics',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], ),
    sa.PrimaryKeyConstraint('subscriber_id', 'topic_id')
    )
    with op.batch_alter_table('subscriber_topics', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_topics_topic_id', ['topic_id'], unique=False)
    op.create_table('digest_variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest_id', sa.Integer(), nullable=False),
    sa.Column('topic_ids', sa.JSON(), nullable=False),
    sa.Column('article_ids', sa.JSON(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('digest_variants', schema=None) as batch_op:
        batch_op.create_index('ix_digest_variants_digest_id', ['digest_id'], unique=False)

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cadence', CADENCE, server_default='weekly', nullable=False))
        batch_op.add_column(sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feed_url', sa.String(length=2048), nullable=True))
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cadence', CADENCE, nullable=True))
    op.execute("UPDATE digests SET cadence = 'weekly' WHERE period_key LIKE 'weekly-%'")
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topics', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('cadence', sa.String(length=16), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_deliveries_variant_id', 'digest_variants',
                                    ['variant_id'], ['id'])


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint('fk_deliveries_variant_id', type_='foreignkey')
        batch_op.drop_column('variant_id')
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.drop_column('cadence')
        batch_op.drop_column('topics')
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_column('cadence')
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_column('feed_url')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('paused_until')
        batch_op.drop_column('cadence')
    op.drop_table('digest_variants')
    op.drop_table('subscriber_topics')
    op.drop_table('article_topics')
    op.drop_table('topics')
