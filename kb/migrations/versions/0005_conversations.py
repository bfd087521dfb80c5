"""conversations, utterances, card impressions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:37:54.218530
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('card_impression',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('conversation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('entry_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('product_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('changed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('card_impression', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_impression_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_impression_category'), ['category'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_impression_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_impression_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_impression_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_impression_product_type'), ['product_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_impression_ts'), ['ts'], unique=False)

    op.create_table('conversation',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('opened_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('opened_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('turns', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_opened_at'), ['opened_at'], unique=False)

    op.create_table('utterance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('speaker', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('utterance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_utterance_conversation_id'), ['conversation_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('utterance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_utterance_conversation_id'))

    op.drop_table('utterance')
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_opened_at'))
        batch_op.drop_index(batch_op.f('ix_conversation_customer_id'))
        batch_op.drop_index(batch_op.f('ix_conversation_agent'))

    op.drop_table('conversation')
    with op.batch_alter_table('card_impression', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_impression_ts'))
        batch_op.drop_index(batch_op.f('ix_card_impression_product_type'))
        batch_op.drop_index(batch_op.f('ix_card_impression_entry_id'))
        batch_op.drop_index(batch_op.f('ix_card_impression_customer_id'))
        batch_op.drop_index(batch_op.f('ix_card_impression_conversation_id'))
        batch_op.drop_index(batch_op.f('ix_card_impression_category'))
        batch_op.drop_index(batch_op.f('ix_card_impression_agent'))

    op.drop_table('card_impression')
