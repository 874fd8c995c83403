"""Population effective half-lives per structure for single-time-point (STP) dosimetry.

The Madsen 2018 STP method (Med Phys 45:2318) needs a population effective half-life T_eff of
the structure. The defaults below are *project defaults* for 177Lu-DOTATOC/-DOTATATE, chosen as
round values of the order reported in the 177Lu-SSTR literature (kidney ~50 h, tumour ~90 h,
liver and spleen ~70 h); they are not taken from one paper and every site should replace them
with its own population values (``PopulationTable(...)`` or ``fit_tac(population_t_eff_h=...)``).
The relative SD is an assumption (20 %) used to propagate the T_eff uncertainty into the STP TIA.
Every lookup returns the entry with its ``source`` text so the result records where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from startnet.errors import InputError
from startnet.structure_kinds import KIDNEY, LIVER, SPLEEN, TUMOUR, structure_kind

PROJECT_DEFAULT_SOURCE = (
    "START-NET project default (round literature-order value for 177Lu-SSTR peptides; "
    "replace with site population data)"
)


@dataclass(frozen=True)
class PopulationTeff:
    structure: str
    t_eff_h: float
    rel_sd: float
    source: str


@dataclass
class PopulationTable:
    """Structure name (case-insensitive; aliases allowed) -> population T_eff entry.

    ``aliases``: word -> entry name, tried (exactly, then anywhere in the name) before the shared
    alias table of ``startnet.structure_kinds``.
    """

    entries: Dict[str, PopulationTeff] = field(default_factory=dict)
    aliases: Dict[str, str] = field(default_factory=dict)

    def add(self, structure: str, t_eff_h: float, rel_sd: float = 0.2, source: str = "user") -> None:
        if not (t_eff_h > 0.0) or rel_sd < 0.0:
            raise InputError(
                f"population T_eff for '{structure}': expected t_eff_h > 0 and rel_sd >= 0, "
                f"got t_eff_h={t_eff_h}, rel_sd={rel_sd}"
            )
        self.entries[structure.lower()] = PopulationTeff(structure.lower(), float(t_eff_h), float(rel_sd), source)

    def lookup(self, structure: str) -> Optional[PopulationTeff]:
        key = structure.strip().lower()
        key = self.aliases.get(key, key)
        if key in self.entries:
            return self.entries[key]
        # the kind the name denotes ("Kidney_Left", "Tumor 3", "liver lesion 2" -> tumour), from this
        # table's own aliases first, then the shared alias table; then an entry named in the name
        kind = structure_kind(key, self.aliases)
        if kind in self.entries:
            return self.entries[kind]
        for name in self.entries:
            if name in key:
                return self.entries[name]
        return None


def default_population_table() -> PopulationTable:
    """The project defaults; names are matched to kinds by ``startnet.structure_kinds``."""
    table = PopulationTable()
    for name, t_eff_h in ((TUMOUR, 90.0), (KIDNEY, 50.0), (LIVER, 70.0), (SPLEEN, 70.0)):
        table.add(name, t_eff_h, 0.2, PROJECT_DEFAULT_SOURCE)
    return table
