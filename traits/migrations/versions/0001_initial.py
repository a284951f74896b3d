"""Initial trait database schema: taxa, images, runs, results, regions, traits, assertions, curation, errors.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Written out in full (not imported from traits.db) so that this revision stays what it was when the tables in
traits/db.py change later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _id(table: str) -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _fk(name: str, table: str, target: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Integer, sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{name}_{target}"),
                     nullable=nullable)


def upgrade() -> None:
    """Create the version-1 tables."""
    op.create_table(
        "taxa", _id("taxa"),
        sa.Column("scientific_name", sa.String(255), nullable=False),
        sa.Column("common_name", sa.String(255)),
        sa.Column("taxon_rank", sa.String(32), nullable=False, server_default="species"),
        sa.PrimaryKeyConstraint("id", name="pk_taxa"),
        sa.UniqueConstraint("scientific_name", name="uq_taxa_scientific_name"),
    )
    op.create_table(
        "expert_sources", _id("expert_sources"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64)),
        sa.Column("citation", sa.Text),
        sa.Column("url", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_expert_sources"),
        sa.UniqueConstraint("name", name="uq_expert_sources_name"),
    )
    op.create_table(
        "images", _id("images"),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        _fk("taxon_id", "images", "taxa"),
        sa.Column("licence", sa.Text),
        sa.Column("metadata", sa.JSON),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("sha256", name="uq_images_sha256"),
    )
    op.create_table(
        "runs", _id("runs"),
        sa.Column("config_sha256", sa.String(64), nullable=False),
        sa.Column("tool_version", sa.String(64), nullable=False),
        sa.Column("classifier", sa.Text, nullable=False),
        sa.Column("classifier_sha256", sa.String(64)),
        sa.Column("scorer", sa.String(255)),
        sa.Column("cam_method", sa.String(64)),
        sa.Column("gamma", sa.Float),
        _fk("expert_source_id", "runs", "expert_sources"),
        sa.Column("configuration", sa.JSON, nullable=False),
        sa.Column("provenance", sa.JSON),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("config_sha256", name="uq_runs_config_sha256"),
        sa.CheckConstraint("status IN ('running', 'finished', 'interrupted', 'failed')", name="ck_runs_status"),
    )
    op.create_table(
        "results", _id("results"),
        _fk("run_id", "results", "runs", nullable=False),
        _fk("image_id", "results", "images", nullable=False),
        _fk("taxon_id", "results", "taxa", nullable=False),
        _fk("contrast_taxon_id", "results", "taxa", nullable=False),
        sa.Column("target_probability", sa.Float),
        sa.Column("uncertain", sa.Boolean),
        sa.Column("text", sa.Text),
        sa.Column("warnings", sa.JSON),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
        sa.UniqueConstraint("run_id", "image_id", "contrast_taxon_id",
                            name="uq_results_run_id_image_id_contrast_taxon_id"),
    )
    op.create_table(
        "regions", _id("regions"),
        _fk("result_id", "regions", "results", nullable=False),
        sa.Column("region_index", sa.Integer, nullable=False),
        *[sa.Column(c, sa.Float, nullable=False) for c in ("x0", "y0", "x1", "y1")],
        sa.Column("mass", sa.Float),
        sa.Column("area_fraction", sa.Float),
        sa.Column("peak", sa.Float),
        sa.Column("location", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_regions"),
        sa.UniqueConstraint("result_id", "region_index", name="uq_regions_result_id_region_index"),
    )
    op.create_table(
        "traits", _id("traits"),
        sa.Column("part", sa.String(255), nullable=False),
        sa.Column("attribute", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("text", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_traits"),
        sa.UniqueConstraint("part", "attribute", "value", "side", name="uq_traits_part_attribute_value_side"),
    )
    op.create_table(
        "trait_assertions", _id("trait_assertions"),
        _fk("result_id", "trait_assertions", "results", nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        _fk("taxon_id", "trait_assertions", "taxa", nullable=False),
        _fk("contrast_taxon_id", "trait_assertions", "taxa", nullable=False),
        _fk("trait_id", "trait_assertions", "traits", nullable=False),
        _fk("region_id", "trait_assertions", "regions"),
        sa.Column("phrase", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("contrast_score", sa.Float),
        sa.Column("direction", sa.String(16)),
        sa.Column("confidence", sa.String(16)),
        sa.Column("method", sa.Text),
        _fk("determined_by_run_id", "trait_assertions", "runs", nullable=False),
        sa.Column("determined_date", TZ, nullable=False),
        sa.Column("expert_status", sa.String(32)),
        _fk("expert_source_id", "trait_assertions", "expert_sources"),
        sa.Column("remarks", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_trait_assertions"),
        sa.UniqueConstraint("result_id", "rank", name="uq_trait_assertions_result_id_rank"),
    )
    op.create_table(
        "curation", _id("curation"),
        _fk("assertion_id", "curation", "trait_assertions", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("curator", sa.String(255), nullable=False),
        sa.Column("curated_at", TZ, nullable=False),
        sa.Column("note", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_curation"),
        sa.CheckConstraint("status IN ('accepted', 'rejected', 'pending')", name="ck_curation_status"),
    )
    op.create_index("ix_curation_assertion_id", "curation", ["assertion_id"])
    op.create_table(
        "image_errors", _id("image_errors"),
        _fk("run_id", "image_errors", "runs", nullable=False),
        sa.Column("item_key", sa.String(1024), nullable=False),
        sa.Column("image_path", sa.Text, nullable=False),
        sa.Column("species", sa.Text),
        sa.Column("manifest_row", sa.Integer),
        sa.Column("error_code", sa.String(16)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_image_errors"),
        sa.UniqueConstraint("run_id", "item_key", name="uq_image_errors_run_id_item_key"),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in ("image_errors", "curation", "trait_assertions", "traits", "regions", "results", "runs",
                  "images", "expert_sources", "taxa"):
        op.drop_table(table)
