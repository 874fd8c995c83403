"""What kind of structure a name denotes: one alias table for every per-kind parameter.

Structure names come from users' segmentations ("Kidney_Left", "tumor 3", "liver lesion 2",
"met_1"), so every table of per-kind parameters (radiobiology in ``cycle.analyse.BED_PARAMETERS``,
population effective half-lives in ``kinetics.population``) looks the name up here first.

Matching is case-insensitive. Tumour words win over organ words, so a lesion in the liver is a
tumour. Most words match anywhere in the name; short ones only as a whole word (the name split at
anything that is not a letter), because "met" would otherwise match inside unrelated words and
"renal" inside "adrenal".
"""

from __future__ import annotations

import re
from typing import Mapping, Optional, Tuple

KIDNEY = "kidney"
TUMOUR = "tumour"
LIVER = "liver"
SPLEEN = "spleen"
KINDS = (TUMOUR, KIDNEY, LIVER, SPLEEN)

# (word, kind, whole word only) in priority order: tumour words first, so "liver lesion 2" is a tumour
ALIASES: Tuple[Tuple[str, str, bool], ...] = (
    ("tumour", TUMOUR, False), ("tumor", TUMOUR, False), ("lesion", TUMOUR, False), ("metasta", TUMOUR, False),
    ("met", TUMOUR, True), ("mets", TUMOUR, True), ("gtv", TUMOUR, True),
    ("kidney", KIDNEY, False), ("renal", KIDNEY, True),
    ("liver", LIVER, False), ("hepatic", LIVER, True),
    ("spleen", SPLEEN, False), ("splenic", SPLEEN, True),
)


def structure_kind(name: str, extra_aliases: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The kind (one of ``KINDS``) a structure name denotes, or None (e.g. "bladder", "body").

    ``extra_aliases`` (word -> kind, matched anywhere in the name) are tried before the table.
    """
    key = name.strip().lower()
    for word, kind in (extra_aliases or {}).items():
        if word.lower() in key:
            return kind
    words = set(re.split(r"[^a-z]+", key))
    for word, kind, whole_word in ALIASES:
        if (word in words) if whole_word else (word in key):
            return kind
    return None
