"""update packs, reviews, escalations, outbox, change notices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:32:04.541340
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('change_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('from_version', sa.Integer(), nullable=False),
    sa.Column('effective_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('change_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_change_notice_effective_at'), ['effective_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_change_notice_entry_id'), ['entry_id'], unique=False)

    op.create_table('outbox_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('processed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_event_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_event_pack_id'), ['pack_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_event_processed_at'), ['processed_at'], unique=False)

    op.create_table('update_pack',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('submitter', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('sla_due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('approved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('approved_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('effective_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('searchable_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('escalated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('update_pack', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_update_pack_sla_due_at'), ['sla_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_update_pack_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_update_pack_submitter'), ['submitter'], unique=False)

    op.create_table('escalation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('notify_roles', sa.JSON(), nullable=False),
    sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['pack_id'], ['update_pack.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_pack_id'), ['pack_id'], unique=False)

    op.create_table('pack_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('op', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('entry_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('base_version', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('result_version', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['pack_id'], ['update_pack.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('pack_id', 'position', name='uq_pack_item_position')
    )
    with op.batch_alter_table('pack_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pack_item_pack_id'), ['pack_id'], unique=False)

    op.create_table('review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('pack_revision', sa.Integer(), nullable=False),
    sa.Column('reviewer', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('rules_version', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['pack_id'], ['update_pack.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_pack_id'), ['pack_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_pack_id'))

    op.drop_table('review')
    with op.batch_alter_table('pack_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pack_item_pack_id'))

    op.drop_table('pack_item')
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_pack_id'))

    op.drop_table('escalation')
    with op.batch_alter_table('update_pack', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_update_pack_submitter'))
        batch_op.drop_index(batch_op.f('ix_update_pack_state'))
        batch_op.drop_index(batch_op.f('ix_update_pack_sla_due_at'))

    op.drop_table('update_pack')
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_event_processed_at'))
        batch_op.drop_index(batch_op.f('ix_outbox_event_pack_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_event_entry_id'))

    op.drop_table('outbox_event')
    with op.batch_alter_table('change_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_change_notice_entry_id'))
        batch_op.drop_index(batch_op.f('ix_change_notice_effective_at'))

    op.drop_table('change_notice')
