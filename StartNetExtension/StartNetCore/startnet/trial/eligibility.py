"""START-NET eligibility: the seed's inclusion/exclusion criteria and lab thresholds (REFERENCE §1).

An eligibility record is a JSON object (flat, or grouped in sub-objects such as "labs",
"inclusion", "exclusion"; groups are flattened). Keys are the criterion names of
:data:`CRITERIA`; common spellings are recognised ("gfr", "egfr_ml_min", "hemoglobin_g_l",
"platelets_10e9_l", "ast_x_uln", ...), but a key whose unit differs from the criterion's (e.g.
"hb_g_dl", "asat_u_l") is never reinterpreted. Keys that match no criterion are kept and listed as
"not evaluated"; criteria absent from the record are listed as "not documented" (both stored and
shown), so that a misspelt lab value is visible, never silently passed. Any documented criterion
that fails refuses enrolment, naming every failing criterion.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from startnet.errors import InputError


@dataclass(frozen=True)
class Criterion:
    key: str
    text: str      # what must hold, as shown to the user
    kind: str      # "min_exclusive", "max_exclusive", "min_inclusive", "true", "false", "range"
    limit: Optional[Tuple[float, ...]] = None
    arms: Tuple[int, ...] = (1, 2, 3)


CRITERIA: Tuple[Criterion, ...] = (
    Criterion("age_years", "age >= 18 years", "min_inclusive", (18,)),
    Criterion("written_consent", "written informed consent", "true"),
    Criterion("ecog", "ECOG performance status 0-1", "range", (0, 1)),
    Criterion("net_confirmed", "histologically confirmed advanced well-differentiated inoperable NET",
              "true"),
    Criterion("pheochromocytoma_or_paraganglioma", "not pheochromocytoma/paraganglioma", "false"),
    Criterion("sstr_uptake_above_liver", "SSTR uptake > liver on 68Ga-DOTA-PET", "true"),
    Criterion("fdg_pet_positive", "18F-FDG-PET-positive disease (arm 1)", "true", arms=(1,)),
    Criterion("progression_months", "radiological progression within 1-24 months", "range", (1, 24)),
    Criterion("measurable_disease_recist", "measurable disease by RECIST 1.1", "true"),
    Criterion("prrt_treatment_of_choice", "PRRT judged the treatment of choice", "true"),
    Criterion("gfr_ml_min_1_73m2", "GFR > 50 mL/min/1.73 m2", "min_exclusive", (50,)),
    Criterion("hb_g_l", "Hb > 90 g/L", "min_exclusive", (90,)),
    Criterion("platelets_1e9_l", "platelets > 100 x10^9/L", "min_exclusive", (100,)),
    Criterion("leukocytes_1e9_l", "leukocytes > 3.0 x10^9/L", "min_exclusive", (3.0,)),
    Criterion("neutrophils_1e9_l", "neutrophils > 1.5 x10^9/L", "min_exclusive", (1.5,)),
    Criterion("asat_x_uln", "ASAT < 3 x ULN", "max_exclusive", (3,)),
    Criterion("alat_x_uln", "ALAT < 3 x ULN", "max_exclusive", (3,)),
    Criterion("bilirubin_x_uln", "bilirubin < 2 x ULN", "max_exclusive", (2,)),
    Criterion("albumin_g_l", "albumin > 25 g/L", "min_exclusive", (25,)),
    Criterion("contraception_if_childbearing",
              "contraception (women of child-bearing potential) until >= 6 months after treatment "
              "(true, or \"n/a\")", "true"),
    Criterion("pregnancy_or_lactation", "no pregnancy or lactation", "false"),
    Criterion("previous_prrt", "no previous PRRT", "false"),
    Criterion("concomitant_antitumour_therapy", "no concomitant systemic anti-tumour therapy other than SSA",
              "false"),
    Criterion("capecitabine_contraindication", "no contraindication to capecitabine", "false"),
    Criterion("lesions_without_sstr_uptake", "no CT/MRI/FDG lesions without 68Ga-DOTATOC uptake", "false"),
    Criterion("serious_uncontrolled_condition", "no serious uncontrolled condition", "false"),
    Criterion("unwilling_to_participate", "willing to take part", "false"),
)
_BY_KEY = {c.key: c for c in CRITERIA}
ALIASES: Dict[str, str] = {
    "age": "age_years", "consent": "written_consent", "ecog_ps": "ecog",
    "gfr": "gfr_ml_min_1_73m2", "gfr_ml_min": "gfr_ml_min_1_73m2",
    "hb": "hb_g_l", "hemoglobin_g_l": "hb_g_l", "haemoglobin_g_l": "hb_g_l",
    "platelets": "platelets_1e9_l", "platelets_10e9_l": "platelets_1e9_l",
    "leukocytes": "leukocytes_1e9_l", "leukocytes_10e9_l": "leukocytes_1e9_l", "wbc_1e9_l": "leukocytes_1e9_l",
    "neutrophils": "neutrophils_1e9_l", "neutrophils_10e9_l": "neutrophils_1e9_l",
    "albumin": "albumin_g_l", "pregnancy": "pregnancy_or_lactation",
}
ALIASES.update({
    "informed_consent": "written_consent", "written_informed_consent": "written_consent",
    "prior_prrt": "previous_prrt", "pregnant": "pregnancy_or_lactation", "lactation": "pregnancy_or_lactation",
    "pheochromocytoma": "pheochromocytoma_or_paraganglioma", "paraganglioma": "pheochromocytoma_or_paraganglioma",
})
_COUNT_UNITS = {"1e9", "10e9", "x10e9", "e9", "10", "9", "x", "l", "per", "109", "x109", "count"}
# (name prefixes, criterion, unit tokens allowed after the name, tokens required)
_PATTERNS = (
    (("gfr", "egfr"), "gfr_ml_min_1_73m2", {"ml", "min", "1", "73", "73m2", "m2", "per"}, set()),
    (("hb", "hgb", "hemoglobin", "haemoglobin"), "hb_g_l", {"g", "l", "per"}, set()),
    (("platelets", "platelet", "plt", "thrombocytes"), "platelets_1e9_l", _COUNT_UNITS, set()),
    (("leukocytes", "leucocytes", "leukocyte", "wbc"), "leukocytes_1e9_l", _COUNT_UNITS, set()),
    (("neutrophils", "neutrophil", "anc"), "neutrophils_1e9_l", _COUNT_UNITS, set()),
    (("asat", "ast"), "asat_x_uln", {"x", "uln", "times"}, {"uln"}),
    (("alat", "alt"), "alat_x_uln", {"x", "uln", "times"}, {"uln"}),
    (("bilirubin", "bili"), "bilirubin_x_uln", {"x", "uln", "times"}, {"uln"}),
    (("albumin", "alb"), "albumin_g_l", {"g", "l", "per"}, set()),
    (("age",), "age_years", {"years", "y", "yr"}, set()),
    (("ecog",), "ecog", {"ps", "performance", "status"}, set()),
)
GROUPS = ("labs", "inclusion", "exclusion", "criteria")
META_KEYS = ("assessed_on", "assessed_by", "remarks")


@dataclass(frozen=True)
class EligibilityResult:
    eligible: bool
    failed: List[str] = field(default_factory=list)          # "GFR > 50 mL/min/1.73 m2 (got 45)"
    not_documented: List[str] = field(default_factory=list)  # criterion keys absent from the record
    values: Dict[str, Any] = field(default_factory=dict)     # normalised record as stored
    not_evaluated: List[str] = field(default_factory=list)   # record keys matching no criterion

    def to_dict(self) -> Dict[str, Any]:
        return {"eligible": self.eligible, "failed": list(self.failed),
                "not_documented": list(self.not_documented), "not_evaluated": list(self.not_evaluated),
                "values": dict(self.values)}


def resolve_key(key: str) -> Optional[str]:
    """The criterion a record key names, or None."""
    k = re.sub(r"[^a-z0-9]+", "_", key.strip().lower()).strip("_")
    if k in _BY_KEY:
        return k
    if k in ALIASES:
        return ALIASES[k]
    tokens = k.split("_")
    for prefixes, criterion, allowed, required in _PATTERNS:
        if tokens[0] in prefixes and set(tokens[1:]) <= allowed and required <= set(tokens[1:]):
            return criterion
    return None


def normalise(record: Dict[str, Any], source: str = "eligibility record") -> Dict[str, Any]:
    if not isinstance(record, dict):
        raise InputError(f"{source}: expected a JSON object of criteria, got {type(record).__name__}")
    flat: Dict[str, Any] = {}
    items = list(record.items())
    while items:
        key, value = items.pop(0)
        if key in GROUPS and isinstance(value, dict):
            items.extend(value.items())
            continue
        if key in META_KEYS:
            flat[key] = value
            continue
        name = resolve_key(str(key))
        if name is None:
            flat.setdefault("not_evaluated", {})[key] = value
            continue
        if name in flat:
            raise InputError(f"{source}: criterion {name!r} given twice")
        flat[name] = value
    return flat


def _check(c: Criterion, value: Any) -> Optional[bool]:
    """True = passes, False = fails; raises for a value of the wrong type."""
    if c.kind in ("true", "false"):
        if c.key == "contraception_if_childbearing" and isinstance(value, str) and value.lower() in (
                "n/a", "na", "not applicable"):
            return True
        if not isinstance(value, bool):
            raise InputError(f"eligibility: {c.key} must be true or false, got {value!r}")
        return value if c.kind == "true" else not value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"eligibility: {c.key} must be a number, got {value!r}")
    ops: Dict[str, Callable[[float], bool]] = {
        "min_exclusive": lambda v: v > c.limit[0],
        "max_exclusive": lambda v: v < c.limit[0],
        "min_inclusive": lambda v: v >= c.limit[0],
        "range": lambda v: c.limit[0] <= v <= c.limit[1],
    }
    return ops[c.kind](float(value))


def evaluate(record: Dict[str, Any], arm: int, source: str = "eligibility record") -> EligibilityResult:
    values = normalise(record, source)
    failed: List[str] = []
    missing: List[str] = []
    for c in CRITERIA:
        if arm not in c.arms:
            continue
        if c.key not in values or values[c.key] is None:
            missing.append(c.key)
            continue
        if not _check(c, values[c.key]):
            failed.append(f"{c.text} (got {values[c.key]!r})")
    return EligibilityResult(eligible=not failed, failed=failed, not_documented=missing, values=values,
                             not_evaluated=sorted(values.get("not_evaluated", {})))


def load(path: str, arm: int) -> EligibilityResult:
    p = Path(path)
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"eligibility file {path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"eligibility file {path}: not readable JSON ({exc})") from None
    return evaluate(record, arm, source=f"eligibility file {path}")
