"""Model-selection uncertainty of a TAC fit: spread of TIA over the AICc-plausible models.

Akaike weights w_i = exp(-dAICc_i / 2) / sum_j exp(-dAICc_j / 2) over the candidate models that
were fitted, are AICc-eligible (n > p + 1) and usable. The standard uncertainty of the selected
model's TIA due to the choice of model is the weighted RMS deviation of the candidates' TIA from
it, sqrt(sum w_i (TIA_i - TIA_selected)^2) (Burnham & Anderson 2002, section 4.3, unconditional
variance without the within-model part, which the fit covariance already carries).

With one eligible model (e.g. four time points: only the mono-exponential is eligible) the term
is 0 and the note says so: the choice was made by the fallback rules, not by the data.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np


def model_selection_rel_sd(fit) -> Tuple[float, str]:
    """(relative SD of the TIA from the choice of model, note for the report)."""
    rows = [(c.aicc, c.tia_mbq_h, c.model) for c in fit.candidates
            if c.ok and math.isfinite(c.aicc) and math.isfinite(getattr(c, "tia_mbq_h", math.nan))]
    if len(rows) < 2 or not fit.tia_mbq_h > 0:
        return 0.0, f"{len(rows)} AICc-eligible model(s): no model-selection spread estimated"
    aiccs = np.array([r[0] for r in rows])
    tias = np.array([r[1] for r in rows])
    weights = np.exp(-(aiccs - aiccs.min()) / 2.0)
    weights /= weights.sum()
    rel = math.sqrt(float(np.sum(weights * (tias - fit.tia_mbq_h) ** 2))) / fit.tia_mbq_h
    note = "Akaike weights " + ", ".join(f"{m} {w:.2f}" for (_, _, m), w in zip(rows, weights))
    return rel, note
