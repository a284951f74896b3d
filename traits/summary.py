"""Per species pair: which traits were found, in how many photos, how they fare against experts and curators."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from traits.db import TraitDB, results, taxa
from traits.export import assertions_frame

# Statuses from traits.check: confirmed agrees with the expert list, contradicted disagrees, new is unlisted.
AGREE, DISAGREE = "confirmed", "contradicted"

SUMMARY_COLUMNS = [
    "scientific_name", "contrast_scientific_name", "part", "attribute", "value", "side", "direction",
    "assertions", "images", "pair_images", "frequency", "mean_score", "mean_contrast_score", "confirmed",
    "contradicted", "new", "unchecked", "expert_agreement", "accepted", "rejected", "pending",
]


def pair_image_counts(db: TraitDB, run_id: int | None = None) -> pd.DataFrame:
    """Photos described per (taxon, contrast) pair, with or without assertions."""
    t, c = taxa.alias("t"), taxa.alias("c")
    q = (sa.select(t.c.scientific_name, c.c.scientific_name.label("contrast_scientific_name"),
                   sa.func.count(sa.distinct(results.c.image_id)).label("pair_images"))
         .select_from(results).join(t, t.c.id == results.c.taxon_id).join(c, c.c.id == results.c.contrast_taxon_id)
         .group_by(t.c.scientific_name, c.c.scientific_name))
    if run_id is not None:
        q = q.where(results.c.run_id == run_id)
    with db.connect() as conn:
        rows = conn.execute(q).all()
    return pd.DataFrame([r._mapping for r in rows],
                        columns=["scientific_name", "contrast_scientific_name", "pair_images"])


def summarise(db: TraitDB, run_id: int | None = None) -> pd.DataFrame:
    """One row per (pair, trait, direction): how often it was found, mean scores, expert and curation counts.

    frequency = photos with the trait / photos of the pair described; expert_agreement = confirmed /
    (confirmed + contradicted), NaN when no expert list covered it.
    """
    frame = assertions_frame(db, run_id)
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = frame.assign(
        confirmed=frame.expert_status.eq(AGREE), contradicted=frame.expert_status.eq(DISAGREE),
        new=frame.expert_status.eq("new"), unchecked=frame.expert_status.isna(),
        accepted=frame.curation_status.eq("accepted"), rejected=frame.curation_status.eq("rejected"),
        pending=frame.curation_status.eq("pending"), direction=frame.direction.fillna(""))
    keys = ["scientific_name", "contrast_scientific_name", "part", "attribute", "value", "side", "direction"]
    out = frame.groupby(keys, sort=False).agg(
        assertions=("assertion_id", "size"), images=("image_sha256", "nunique"), mean_score=("score", "mean"),
        mean_contrast_score=("contrast_score", "mean"), confirmed=("confirmed", "sum"),
        contradicted=("contradicted", "sum"), new=("new", "sum"), unchecked=("unchecked", "sum"),
        accepted=("accepted", "sum"), rejected=("rejected", "sum"), pending=("pending", "sum")).reset_index()
    out = out.merge(pair_image_counts(db, run_id), on=["scientific_name", "contrast_scientific_name"], how="left")
    out["frequency"] = out.images / out.pair_images
    checked = out.confirmed + out.contradicted
    out["expert_agreement"] = (out.confirmed / checked).where(checked > 0)
    out = out.sort_values(["scientific_name", "contrast_scientific_name", "frequency", "mean_score"],
                          ascending=[True, True, False, False], kind="stable").reset_index(drop=True)
    return out[SUMMARY_COLUMNS]
