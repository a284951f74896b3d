"""Temperature scaling of a linear head's probabilities, fitted on out-of-fold training logits.

The test split is never used to fit the temperature, only to report how well calibrated the probabilities are
before and after (expected calibration error over equal-width confidence bins, and negative log-likelihood).
The temperature divides logits only where probabilities are read; CAMs keep explaining the raw logits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)
FOLDS = 5
ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017
METHOD = "temperature"
FITTED_ON = "out-of-fold training logits"

HeadFit = Callable[[torch.Tensor, torch.Tensor, int], nn.Linear]


def fold_assignment(labels: torch.Tensor, folds: int = FOLDS, seed: int = 0) -> torch.Tensor:
    """Fold index per photo, stratified: each species' photos are shuffled and dealt round the folds in turn.

    Photos of a species with a single training photo get -1: holding it out would leave its species unseen by
    that fold's head, so its out-of-fold logit would measure a missing class, not an over-confident one."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.full((len(labels),), -1, dtype=torch.long)
    offset = 0
    for cls in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == cls).flatten()
        if len(idx) < 2:
            continue
        idx = idx[torch.randperm(len(idx), generator=gen)]
        # A rolling start spreads small species over different folds instead of piling them into fold 0.
        out[idx] = (torch.arange(len(idx)) + offset) % folds
        offset += len(idx)
    return out


def out_of_fold_logits(features: torch.Tensor, labels: torch.Tensor, num_classes: int, fit: HeadFit,
                       folds: int = FOLDS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [M, C], labels [M]) of the held-out photos, each from a head fitted without its fold; photos of
    species with one training photo stay in every fold's training set and are not scored."""
    assign = fold_assignment(labels, folds, seed)
    logits, kept = [], []
    for k in range(folds):
        held = assign == k
        if not held.any():
            continue
        head = fit(features[~held], labels[~held], num_classes)
        with torch.no_grad():
            logits.append(head(features[held].to(head.weight.device)).float().cpu())
        kept.append(torch.nonzero(held).flatten())
    if not logits:
        return torch.zeros(0, num_classes), torch.zeros(0, dtype=torch.long)
    order = torch.cat(kept)
    return torch.cat(logits), labels[order].cpu()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T); 1.0 without logits."""
    if len(logits) == 0:
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)  # T = exp(log_t) stays positive
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")
    x, y = logits.double(), labels

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x / log_t.double().exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    t = float(log_t.detach().exp())
    return t if math.isfinite(t) and t > 0 else 1.0


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float | None:
    """Mean NLL of the true class under softmax(logits / T); None without photos."""
    if len(logits) == 0:
        return None
    return float(F.cross_entropy(logits.double() / temperature, labels))


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                               bins: int = ECE_BINS) -> float | None:
    """ECE: sum over equal-width confidence bins of (share of photos) x |accuracy - mean confidence|."""
    if len(logits) == 0:
        return None
    probs = (logits.double() / temperature).softmax(-1)
    conf, pred = probs.max(-1)
    right = (pred == labels).double()
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 cannot occur with softmax.
    which = (conf * bins).ceil().clamp(1, bins).long() - 1
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += float(sel.double().mean()) * abs(float(right[sel].mean() - conf[sel].mean()))
    return ece


def calibrate(train_features: torch.Tensor, train_labels: torch.Tensor, test_logits: torch.Tensor,
              test_labels: torch.Tensor, num_classes: int, fit: HeadFit, folds: int = FOLDS,
              seed: int = 0) -> dict:
    """The card's 'calibration' entry: a temperature fitted on out-of-fold training logits, with the test split's
    ECE and NLL before and after; temperature 1.0 and a reason when no photo could be held out."""
    oof, oof_labels = out_of_fold_logits(train_features, train_labels, num_classes, fit, folds, seed)
    entry: dict = {"method": METHOD, "fitted_on": FITTED_ON, "folds": folds, "n": int(len(oof)),
                   "ece_bins": ECE_BINS}
    if len(oof) == 0:
        reason = "no species has 2 or more training photos, so no photo can be held out"
        log.warning("Probabilities are not calibrated: %s.", reason)
        entry.update(temperature=1.0, skipped=reason)
    else:
        entry["temperature"] = round(fit_temperature(oof, oof_labels), 4)
    t = entry["temperature"]
    for name, fn in (("ece", expected_calibration_error), ("nll", negative_log_likelihood)):
        before, after = fn(test_logits, test_labels), fn(test_logits, test_labels, t)
        entry[f"{name}_test_before"] = None if before is None else round(before, 4)
        entry[f"{name}_test_after"] = None if after is None else round(after, 4)
    return entry


def card_temperature(card: dict) -> float:
    """The temperature a model card stores (1.0 for cards from before calibration, or a damaged entry)."""
    t = (card.get("calibration") or {}).get("temperature", 1.0) if isinstance(card, dict) else 1.0
    return float(t) if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and t > 0 else 1.0
