"""analytics tables (issue 9): evaluation runs, the golden question set, gaps turned into drafts

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('eval_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('dataset', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('corpus', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('queries', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('app_version', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_eval_run_dataset'), 'eval_run', ['dataset'], unique=False)
    op.create_index(op.f('ix_eval_run_ts'), 'eval_run', ['ts'], unique=False)

    op.create_table('gap_draft',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gap_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('pack_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('representative', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_gap_draft_gap_id'), 'gap_draft', ['gap_id'], unique=False)
    op.create_index(op.f('ix_gap_draft_pack_id'), 'gap_draft', ['pack_id'], unique=False)

    op.create_table('golden_question',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('expected_ids', sa.JSON(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_golden_question_active'), 'golden_question', ['active'], unique=False)
    op.create_index(op.f('ix_golden_question_category'), 'golden_question', ['category'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_golden_question_category'), table_name='golden_question')
    op.drop_index(op.f('ix_golden_question_active'), table_name='golden_question')
    op.drop_table('golden_question')
    op.drop_index(op.f('ix_gap_draft_pack_id'), table_name='gap_draft')
    op.drop_index(op.f('ix_gap_draft_gap_id'), table_name='gap_draft')
    op.drop_table('gap_draft')
    op.drop_index(op.f('ix_eval_run_ts'), table_name='eval_run')
    op.drop_index(op.f('ix_eval_run_dataset'), table_name='eval_run')
    op.drop_table('eval_run')
