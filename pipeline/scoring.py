"""Stage 4 of describe: scores of candidate phrases on one photo, made relative (VisDiff-style) and ranked.

Two comparisons, never raw similarities:
- target vs contrast: the phrase's score on this photo's organism (or on the part the phrase names) against the
  same score on reference photos of the contrast species, standardised by the references' spread;
- region vs organism: the phrase's score in each Finer-CAM region minus its score on the whole organism, which
  says where in this photo the evidence lies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy import stats

from pipeline.masks import Box, mask_box
from pipeline.regions import Region, core_box, masked_crop, part_layout, part_pieces
from pipeline.scorers.base import SIDE_CROP_PAD, Scorer
from prompts.phrases import Candidate, render_trait, value_options
from traits.model import Trait

STRONG, MODERATE, WEAK = 2.5, 1.25, 0.5  # |effect| thresholds (in reference standard deviations)
LLR_STRONG, LLR_MODERATE = 3.0, 1.0  # log-likelihood ratio thresholds (e^3 = 20 times likelier under the target)


def _nan_stats(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-phrase mean and standard deviation over reference photos, ignoring NaN (unscorable) entries."""
    ok = np.isfinite(ref)
    n = np.maximum(ok.sum(0), 1)
    mu = np.where(ok, ref, 0.0).sum(0) / n
    var = np.where(ok, (ref - mu) ** 2, 0.0).sum(0) / n
    mu[ok.sum(0) == 0] = np.nan
    return mu, np.sqrt(var)


def _floor(sd: np.ndarray, real: np.ndarray) -> float:
    """Noise floor: the median reference spread of the real phrases (at least 1e-3)."""
    vals = sd[real & np.isfinite(sd)]
    return max(float(np.median(vals)) if vals.size else 0.0, 1e-3)


def _log_likelihood_ratio(x: np.ndarray, mu_t: np.ndarray, sd_t: np.ndarray, mu_c: np.ndarray,
                          sd_c: np.ndarray) -> np.ndarray:
    """log N(x; target) - log N(x; contrast), per phrase: how much likelier this photo's score is under the target."""
    return (-0.5 * ((x - mu_t) / sd_t) ** 2 - np.log(sd_t)) - (-0.5 * ((x - mu_c) / sd_c) ** 2 - np.log(sd_c))


def context_crop(image: Image.Image, mask: np.ndarray | None, pad: float = 0.15) -> Image.Image:
    """The photo cut to the mask's box grown by `pad` on each side (the whole photo without a mask)."""
    if mask is None or not mask.any():
        return image
    x0, y0, x1, y1 = mask_box(mask)
    px, py = int(pad * (x1 - x0)) + 1, int(pad * (y1 - y0)) + 1
    w, h = image.size
    return image.crop(Box(max(0, x0 - px), max(0, y0 - py), min(w, x1 + px), min(h, y1 + py)))


# Side crops for embedding models: one square crop per layout piece (left band, right band), grown by this share
# and at least this share of the photo's short side, so a crop shows one structure with its surroundings, as in
# the photos such models learned from, rather than two halves of the organism glued into one frame (the pad,
# SIDE_CROP_PAD, lives with the scorers' CropPolicy, whose default framing it is).
SIDE_CROP_MIN = 0.18


def square_crop(image: Image.Image, mask: np.ndarray, pad: float = SIDE_CROP_PAD,
                min_share: float = SIDE_CROP_MIN) -> Image.Image:
    """A square crop centred on the mask's box (side = the box's longer side grown by pad, at least min_share of
    the photo's short side), shifted to stay inside the photo."""
    x0, y0, x1, y1 = mask_box(mask)
    w, h = image.size
    side = min(max(x1 - x0, y1 - y0, min_share * min(w, h)) * (1 + pad), w, h)
    left = min(max((x0 + x1 - side) / 2, 0), w - side)
    top = min(max((y0 + y1 - side) / 2, 0), h - side)
    return image.crop(Box(round(left), round(top), round(left + side), round(top + side)))


def side_pieces(organism: np.ndarray, parts: tuple[str, ...], group: str, box: Box) -> list[np.ndarray]:
    """Layout pieces of one part, or of several parts united side by side (a hindwing with its tail's box)."""
    if len(parts) == 1:
        return part_pieces(organism, parts[0], group, box)
    per_part = [part_pieces(organism, p, group, box, keep_empty=True) for p in parts]
    if len({len(p) for p in per_part}) != 1:  # layouts with different numbers of sides: the first part alone
        return part_pieces(organism, parts[0], group, box)
    return [m for m in (np.logical_or.reduce(side) for side in zip(*per_part, strict=True)) if m.any()]


def _part_crops(image: Image.Image, organism: np.ndarray | None, keys: Sequence[tuple[str, ...] | None],
                scorer: Scorer, group: str,
                located: Mapping[str, np.ndarray] | None = None) -> list[list[Image.Image]]:
    """The crops each crop key (see crop_part) is scored on: one per layout piece for side-crop scorers, else one
    crop (a masked cut-out, or a box with context for context-crop scorers); the whole organism when the layout
    does not know the part. located: part -> bool mask found on this photo (pipeline.parts); a part found there
    is cut from its mask instead of the layout."""
    # Embedding models were trained on plain photos: they get the part's box with some context, not a cut-out.
    policy = scorer.crop_policy
    cut = context_crop if policy.context_crops else masked_crop
    whole = cut(image, organism)
    box = core_box(organism) if organism is not None and organism.any() else None
    out = []
    for key in keys:
        if organism is None or not key:
            out.append([whole])
            continue
        found = [located[p] for p in key if located and p in located]
        pieces = [np.logical_or.reduce(found)] if found else side_pieces(organism, key, group, box)
        if policy.side_crops:
            # Several framings per piece where the scorer asks for them (pipeline.scorers.clip.CROP_PADS).
            out.append([square_crop(image, m, pad=pad) for m in pieces for pad in policy.crop_pads] or [whole])
        else:
            out.append([cut(image, np.logical_or.reduce(pieces))] if pieces else [whole])
    return out


def _mean_rows(table: torch.Tensor, crops: Sequence[Sequence[Image.Image]]) -> torch.Tensor:
    """Average the score rows of each part's crops: [n_crops_total, P] -> [n_parts, P]."""
    rows, start = [], 0
    for group in crops:
        rows.append(table[start:start + len(group)].mean(0))
        start += len(group)
    return torch.stack(rows)


# Judged on the whole host structure together with the sub-part's own box: whether a hindwing has a tail (and
# how long it is, how many eyespots it has) can only be seen with the whole hindwing and the place of the tail in
# view; the tail's box alone shows some other piece of wing where the tail is missing.
WHOLE_STRUCTURE_ATTRIBUTES = frozenset({"presence", "count", "shape"})


def crop_part(part: str | None, attribute: str, group: str = "butterfly") -> tuple[str, ...] | None:
    """The parts whose layout pieces a phrase's crops cover: its own part, or for presence / count / shape of a
    sub-part ('hindwing tail') its host and itself, ('hindwing', 'hindwing tail'), when the layout knows both."""
    if not part:
        return None
    layout = part_layout(group)
    host = part.split(" ", 1)[0]
    if attribute not in WHOLE_STRUCTURE_ATTRIBUTES or " " not in part or host not in layout:
        return (part,)
    return (host, part) if part in layout else (host,)


def image_profile(image: Image.Image, organism: np.ndarray | None, candidates: Sequence[Candidate], scorer: Scorer,
                  group: str = "butterfly", located: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Per-phrase score [P] on this photo: on the part the phrase names when the group's layout knows it or
    `located` has its mask (pipeline.parts.PartLocator.locate), else on the whole organism. The same function
    scores reference photos, so the comparison is like with like."""
    out = np.full(len(candidates), np.nan, dtype=np.float64)
    by_part: dict[tuple[str, ...] | None, list[int]] = {}
    for j, c in enumerate(candidates):
        by_part.setdefault(crop_part(c.trait.part, c.trait.attribute, group), []).append(j)
    crops = _part_crops(image, organism, list(by_part), scorer, group, located)
    if scorer.crop_policy.value_scores in ("prob", "logprob"):
        return _value_profile(crops, list(by_part.values()), candidates, scorer, group)
    if scorer.crop_policy.batch_crops:
        # Embedding scorers: one batched pass over all part crops, then pick each phrase's own part.
        flat = [c for group_crops in crops for c in group_crops]
        table = _mean_rows(torch.as_tensor(scorer.score(flat, [c.phrase for c in candidates])), crops).numpy()
        for k, idx in enumerate(by_part.values()):
            out[idx] = table[k, idx]
        return out
    for part_crops, idx in zip(crops, by_part.values(), strict=True):
        out[idx] = scorer.score(part_crops, [candidates[j].phrase for j in idx]).mean(0).numpy()
    return out


def value_alternatives(candidate: Candidate, controls: Sequence[str] = (), group: str = "butterfly") -> list[str]:
    """The phrases a phrase competes with on its crop: the same part with every other value of its attribute
    ('red / blue / ... forewing band', 'hindwing tail / no hindwing tail'); controls compete with each other, so
    they are scored exactly like real phrases. Fixed per phrase (not per candidate set): reference scores cache."""
    t = candidate.trait
    if candidate.control:
        return list(dict.fromkeys([candidate.phrase, *controls]))
    if t.attribute == "presence":
        return [candidate.phrase, f"no {t.part}"]
    values = value_options(t, group)
    alts = [render_trait(t.with_(value=v)) for v in values if v != t.value]
    # Without alternatives (counts, sizes): the phrase against its bare part ('two hindwing eyespots' vs 'hindwing').
    return [candidate.phrase, *(alts or [t.part])]


def _value_profile(crops: Sequence[Sequence[Image.Image]], groups: Sequence[list[int]],
                   candidates: Sequence[Candidate], scorer: Scorer, group: str = "butterfly") -> np.ndarray:
    """Each phrase's softmax probability (or log-probability) among its value alternatives on its own part's crops
    (similarities averaged over the part's crops first).

    On a part crop raw similarities of all 'X forewing band' phrases rise and fall together with how much the
    crop looks like a forewing band; the softmax over the values of that part keeps only which value it shows.
    """
    controls = [c.phrase for c in candidates if c.control]
    alts = [value_alternatives(c, controls, group) for c in candidates]
    phrases = list(dict.fromkeys(p for a in alts for p in a))
    col = {p: i for i, p in enumerate(phrases)}
    flat = [c for group_crops in crops for c in group_crops]
    table = _mean_rows(torch.as_tensor(scorer.score(flat, phrases)).double(), crops)
    logits = float(scorer.crop_policy.logit_scale) * table
    log = scorer.crop_policy.value_scores == "logprob"
    out = np.full(len(candidates), np.nan, dtype=np.float64)
    for k, idx in enumerate(groups):
        for j in idx:
            lp = torch.log_softmax(logits[k, [col[p] for p in alts[j]]], dim=0)[0]
            out[j] = float(lp if log else lp.exp())
    return out


def region_scores(image: Image.Image, organism: np.ndarray | None, regions: Sequence[Region],
                  candidates: Sequence[Candidate], scorer: Scorer) -> tuple[np.ndarray, np.ndarray]:
    """(whole-organism scores [P], region scores [R, P]); regions are cut to the organism when it is known."""
    phrases = [c.phrase for c in candidates]
    if scorer.crop_policy.context_crops:
        crops = [context_crop(image, organism)] + [r.crop for r in regions]
    else:
        crops = [masked_crop(image, organism)]
        crops += [masked_crop(image, organism, r.box) if organism is not None else r.crop for r in regions]
    s = scorer.score(crops, phrases).numpy().astype(np.float64)
    return s[0], s[1:]


def confidence_of(effect: float) -> str:
    """strong / moderate / weak from the absolute standardised effect."""
    a = abs(effect)
    return "strong" if a >= STRONG else ("moderate" if a >= MODERATE else "weak")


# With value-softmax scores (each phrase's probability among the values of its part), a value counts as shown
# from this probability on: about chance among the ~10 palette colours.
MIN_SHOWN = 0.1


def _probability_as_score(scorer: Scorer, p: float) -> float | None:
    """Probability p on the scorer's score scale (log p for log-probabilities, p for probabilities); None for
    scorers whose scores are not value probabilities."""
    mode = scorer.crop_policy.value_scores
    return float(np.log(p)) if mode == "logprob" else (p if mode == "prob" else None)


def shown_floor(scorer: Scorer) -> float | None:
    """The score from which a phrase's value counts as shown: probability MIN_SHOWN for scorers whose scores are
    value probabilities, the declared share (CropPolicy.shown_at) for pixel-share scorers, else None."""
    if scorer.crop_policy.shown_at is not None:
        return float(scorer.crop_policy.shown_at)
    return _probability_as_score(scorer, MIN_SHOWN)


def absent_threshold(scorer: Scorer) -> float | None:
    """The presence score under which a part counts as absent (P(present) < 0.5 among present / absent), for
    scorers whose scores are value probabilities; None for other scorers."""
    return _probability_as_score(scorer, 0.5)


@dataclass(frozen=True)
class PhraseScore:
    """One candidate phrase's scores on a photo (describe) or on two photo sets (describe_pair).

    index: the phrase's position in the candidate list (the column of the score arrays). Fields a producer does
    not fill stay None: whole_score, support and localisation come from rank_phrases; auroc, mean_diff and p_value
    from set_statistics; in_region, region_effect and region_support from apply_region_evidence (in_region None:
    not checked; region_effect None where the trait is not in a region).
    """

    candidate: Candidate
    index: int
    score: float = float("nan")  # this photo's score (describe_pair: the mean over set A)
    contrast_score: float = float("nan")  # the mean over the contrast references (set B); NaN without them
    effect: float = 0.0  # standardised target-vs-contrast gap
    direction: str = "+"  # '+': the target shows it more than the contrast
    confidence: str = "weak"
    rank_score: float = 0.0  # what the table is sorted by, best first
    region: int | None = None  # the Finer-CAM region that carries the evidence (None: the whole organism)
    whole_score: float | None = None
    support: float | None = None  # log-likelihood ratio under the target vs the contrast references (0: none)
    localisation: float | None = None  # best region score minus the whole-organism score
    auroc: float | None = None
    mean_diff: float | None = None
    p_value: float | None = None
    in_region: bool | None = None
    region_effect: float | None = None
    region_support: float | None = None

    @property
    def phrase(self) -> str:
        """The scored phrase."""
        return self.candidate.phrase

    @property
    def trait(self) -> Trait:
        """The trait the phrase stands for."""
        return self.candidate.trait

    @property
    def control(self) -> bool:
        """True for random-phrase controls."""
        return self.candidate.control

    def to_dict(self) -> dict:
        """The row as a flat dict: the candidate's phrase, source, control, part, attribute and value, then the
        scores."""
        t = self.trait
        head = {"phrase": self.phrase, "source": self.candidate.source, "control": self.control, "part": t.part,
                "attribute": t.attribute, "value": t.value}
        return head | {f.name: getattr(self, f.name) for f in fields(self) if f.name != "candidate"}


@dataclass(frozen=True)
class PhraseTable:
    """The scored phrases of one describe (or describe_pair) call, best first, and the method that ranked them."""

    rows: tuple[PhraseScore, ...]
    method: str | None = None  # target_vs_contrast_llr, target_vs_contrast, region_vs_organism or visdiff_auroc

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[PhraseScore]:
        return iter(self.rows)

    def __getitem__(self, position: int) -> PhraseScore:
        return self.rows[position]

    def sorted(self) -> PhraseTable:
        """Best first: traits in a region the classifier used first (once region evidence is added), then by
        rank_score; ties keep their order and NaN scores go last."""
        rank = np.array([r.rank_score for r in self.rows], dtype=np.float64)
        outside = np.array([not r.in_region for r in self.rows], dtype=bool)
        return self.take(np.lexsort((-rank, outside)))

    def take(self, positions: Iterable[int]) -> PhraseTable:
        """The rows at these positions, in this order."""
        return PhraseTable(tuple(self.rows[int(i)] for i in positions), self.method)

    def where(self, keep: Callable[[PhraseScore], bool]) -> PhraseTable:
        """The rows for which keep(row) holds, in order."""
        return PhraseTable(tuple(r for r in self.rows if keep(r)), self.method)

    @property
    def controls(self) -> PhraseTable:
        """The random-phrase control rows."""
        return self.where(lambda r: r.control)

    @property
    def n_real(self) -> int:
        """How many rows are real (non-control) phrases."""
        return sum(not r.control for r in self.rows)

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame for benchmarks and notebooks: one row per phrase (PhraseScore.to_dict) and
        the table's method; unset fields are empty."""
        columns = ["phrase", "source", "control", "part", "attribute", "value",
                   *(f.name for f in fields(PhraseScore) if f.name != "candidate")]
        frame = pd.DataFrame([r.to_dict() for r in self.rows], columns=columns)
        frame["method"] = self.method
        return frame


def rank_phrases(candidates: Sequence[Candidate], profile: np.ndarray, whole: np.ndarray, regions: np.ndarray,
                 contrast_ref: np.ndarray | None, target_ref: np.ndarray | None = None,
                 floor_shown: float | None = None, absent_below: float | None = None) -> PhraseTable:
    """One row per candidate with its relative scores, direction, confidence and ranking score (best first).

    profile: this photo's scores [P]; whole / regions: whole-organism [P] and region scores [R, P];
    contrast_ref / target_ref: scores of reference photos [n, P] (None: no references, region-vs-organism only).
    floor_shown (see shown_floor): a '+' trait must be shown by this photo and a '-' trait by the contrast
    species (mean over its references) to be ranked; moves among values neither side shows (a colour's
    probability rising from 1e-6 to 1e-4) are not differences. absent_below (see absent_threshold): no colour,
    shape or count of a part on a side that lacks it (describes_a_missing_part).
    """
    n = len(candidates)
    with np.errstate(invalid="ignore"):
        if regions.size:
            local = regions - whole[None, :]
            best_region = np.where(np.isnan(local).all(0), -1, np.nanargmax(np.nan_to_num(local, nan=-np.inf), axis=0))
            localisation = np.nanmax(np.where(np.isnan(local), -np.inf, local), axis=0)
            localisation[~np.isfinite(localisation)] = 0.0
        else:
            best_region = np.full(n, -1)
            localisation = np.zeros(n)
        real = np.array([not c.control for c in candidates])
        support = None
        if contrast_ref is not None and np.isfinite(contrast_ref).any():
            mu_c, sd_c = _nan_stats(contrast_ref)
            # A scorer-wide noise floor: without it a phrase the contrast never shows (sd ~ 0) gets an infinite effect.
            floor = _floor(sd_c, real)
            effect = (profile - mu_c) / np.sqrt(sd_c**2 + floor**2)
            contrast_score = mu_c
            method = "target_vs_contrast"
            if target_ref is not None and np.isfinite(target_ref).any():
                mu_t, sd_t = _nan_stats(target_ref)
                support = _log_likelihood_ratio(profile, mu_t, np.sqrt(sd_t**2 + floor**2), mu_c,
                                                np.sqrt(sd_c**2 + floor**2))
                # Evidence must point the way the species differ: a photo scoring far beyond the contrast in the
                # opposite direction of the target species is an oddity of this photo, not a trait.
                support = np.where(np.sign(profile - mu_c) == np.sign(mu_t - mu_c), support, 0.0)
                method = "target_vs_contrast_llr"
        else:
            spread = float(np.nanstd(localisation[real])) if real.any() else 0.0
            effect = localisation / max(spread, 1e-3)
            contrast_score = np.full(n, np.nan)
            method = "region_vs_organism"
    effect = np.nan_to_num(effect, nan=0.0)
    direction = np.where(effect >= 0, "+", "-")
    # Without reference photos, evidence that sits in a Finer-CAM region (for '+': the phrase is stronger there
    # than on the whole organism) counts a little more. With them, pipeline.evidence compares each region with its
    # counterparts on the reference photos instead (apply_region_evidence), so no bonus is given here.
    localised = (direction == "+") & (localisation > 0) & (method == "region_vs_organism")
    shown = np.ones(n, dtype=bool)
    if floor_shown is not None and method.startswith("target_vs_contrast"):
        # A side shows a value when its species does (reference mean) or, for this photo, when the photo does.
        own = profile if target_ref is None or not np.isfinite(target_ref).any() else np.fmax(profile, mu_t)
        shown = np.where(effect >= 0, own >= floor_shown, contrast_score >= floor_shown)
    if support is not None:
        support = np.nan_to_num(support, nan=0.0)
        rank_score = np.clip(support, 0.0, None) * np.where(localised, 1.25, 1.0) * shown
        confidence = [("strong" if s >= LLR_STRONG and abs(e) >= MODERATE else
                       "moderate" if s >= LLR_MODERATE and abs(e) >= WEAK else "weak")
                      for s, e in zip(support, effect, strict=False)]
    else:
        support = np.zeros(n)
        rank_score = np.abs(effect) * np.where(localised, 1.25, 1.0) * shown
        confidence = [confidence_of(float(e)) for e in effect]
    if absent_below is not None and method.startswith("target_vs_contrast"):
        here = mu_t if method == "target_vs_contrast_llr" else profile
        missing = describes_a_missing_part(candidates, direction, rank_score, here, contrast_score, absent_below)
        rank_score = np.where(missing, 0.0, rank_score)
    rows = tuple(
        PhraseScore(candidate=c, index=j, score=float(profile[j]), whole_score=float(whole[j]),
                    contrast_score=float(contrast_score[j]), effect=float(effect[j]), direction=str(direction[j]),
                    confidence=confidence[j], support=float(support[j]),
                    region=int(best_region[j]) if best_region[j] >= 0 and localisation[j] > 0 else None,
                    localisation=float(localisation[j]), rank_score=float(rank_score[j]))
        for j, c in enumerate(candidates))
    return PhraseTable(rows, method).sorted()


def describes_a_missing_part(candidates: Sequence[Candidate], direction: np.ndarray, rank_score: np.ndarray,
                             here: np.ndarray, there: np.ndarray, absent_below: float) -> np.ndarray:
    """Per candidate: True when it describes a part (its colour, shape, count) on the side that lacks it: a ranked
    presence difference of that part whose lacking side (this species: `here`, the contrast: `there`; presence
    scores per candidate) scores the part under absent_below (more likely absent than present). With "hindwing
    tail -" ranked and the tailless species at P(tail) 0.2, "short hindwing tail +" would give a tailless species a
    tail shape; "long hindwing tail -" (the contrast's tail is longer) still holds. The probability rule keeps a
    spurious presence difference between two species that both show the part from silencing its real colour."""
    lacking: dict[str, str] = {}  # part -> the direction whose claims it cannot support ('+': this species lacks it)
    for j, c in enumerate(candidates):
        t = c.trait
        if c.control or t.attribute != "presence" or t.value == "absent" or not t.part or rank_score[j] <= 0:
            continue
        side, score = ("+", here[j]) if direction[j] == "-" else ("-", there[j])
        if np.isfinite(score) and score < absent_below:
            lacking[t.part] = side
    out = np.zeros(len(candidates), dtype=bool)
    for j, c in enumerate(candidates):
        t = c.trait
        if c.control or t.attribute == "presence" or not t.part:
            continue
        out[j] = any(direction[j] == side and (t.part == part or t.part.startswith(part + " "))
                     for part, side in lacking.items())
    return out


def select_diverse(table: PhraseTable, top_k: int, related: Callable[[str, str], bool] | None = None,
                   min_effect: float = WEAK, finer: Callable[[str, str], bool] | None = None,
                   finer_share: float = 0.5) -> PhraseTable:
    """The top_k real (non-control) rows, LaBo-style diverse: a row repeating a chosen trait (same attribute,
    value and direction) on a related part is skipped, except that a finer part (finer(a, b): a lies inside b)
    with at least finer_share of the chosen row's ranking score replaces it ('white hindwing margin' is more
    informative than 'white hindwing'). Rows below min_effect or without ranking support are dropped."""
    chosen: list[int] = []
    for i, row in enumerate(table):
        if row.control or abs(row.effect) < min_effect or row.rank_score <= 0:
            continue
        dup = False
        for pos, k in enumerate(chosen):
            other = table[k]
            if (other.trait.attribute, other.trait.value, other.direction) != (row.trait.attribute, row.trait.value,
                                                                               row.direction):
                continue
            if related is None or related(other.trait.part, row.trait.part):
                dup = True
                if finer is not None and finer(row.trait.part, other.trait.part) and \
                        row.rank_score >= finer_share * other.rank_score:
                    chosen[pos] = i
                break
        if not dup and len(chosen) < top_k:
            chosen.append(i)
    return table.take(dict.fromkeys(chosen))


def set_statistics(candidates: Sequence[Candidate], scores_a: np.ndarray, scores_b: np.ndarray) -> PhraseTable:
    """VisDiff statistics per phrase for two photo sets [n_a, P] and [n_b, P]: AUROC (A over B), mean difference,
    standardised effect and Welch t-test p-value; best separated first."""
    rows = []
    for j, c in enumerate(candidates):
        a = scores_a[:, j][np.isfinite(scores_a[:, j])]
        b = scores_b[:, j][np.isfinite(scores_b[:, j])]
        if len(a) == 0 or len(b) == 0:
            auroc, diff, effect, p = 0.5, 0.0, 0.0, 1.0
        else:
            # AUROC = P(score_a > score_b) + half the ties (Mann-Whitney U / (n_a n_b)).
            greater = (a[:, None] > b[None, :]).mean()
            ties = (a[:, None] == b[None, :]).mean()
            auroc = float(greater + 0.5 * ties)
            diff = float(a.mean() - b.mean())
            sd = float(np.sqrt((a.var() + b.var()) / 2))
            effect = diff / max(sd, 1e-3)
            if len(a) > 1 and len(b) > 1 and (a.var() > 0 or b.var() > 0):
                p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
            else:
                p = 1.0
        rows.append(PhraseScore(
            candidate=c, index=j, score=float(np.mean(a)) if len(a) else np.nan,
            contrast_score=float(np.mean(b)) if len(b) else np.nan, auroc=auroc, mean_diff=diff, effect=effect,
            p_value=p, direction="+" if diff >= 0 else "-",
            confidence="strong" if abs(auroc - 0.5) >= 0.4 else ("moderate" if abs(auroc - 0.5) >= 0.25 else "weak"),
            rank_score=abs(auroc - 0.5) + 1e-3 * min(abs(effect), 100)))
    return PhraseTable(tuple(rows), "visdiff_auroc").sorted()
