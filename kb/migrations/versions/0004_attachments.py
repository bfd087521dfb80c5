"""attachments of uploaded packs (issue 5)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attachment',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('media_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachment_pack_id'), ['pack_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachment_sha256'), ['sha256'], unique=False)

    op.create_table('attachment_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('attachment_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.Column('entry_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('version_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachment.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['entry_version.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('attachment_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachment_link_attachment_id'), ['attachment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachment_link_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachment_link_pack_id'), ['pack_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachment_link_version_id'), ['version_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('attachment_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachment_link_version_id'))
        batch_op.drop_index(batch_op.f('ix_attachment_link_pack_id'))
        batch_op.drop_index(batch_op.f('ix_attachment_link_entry_id'))
        batch_op.drop_index(batch_op.f('ix_attachment_link_attachment_id'))

    op.drop_table('attachment_link')
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachment_sha256'))
        batch_op.drop_index(batch_op.f('ix_attachment_pack_id'))

    op.drop_table('attachment')
