"""177Lu decay data (ICRP Publication 107) and derived constants.

Values are cited, not bundled from the ICRP-07 data files (their licence restricts
redistribution). See ../shared/REFERENCE.md section 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Tuple

MEV_TO_J = 1.602176634e-13
SECONDS_PER_HOUR = 3600.0
MBQ_TO_BQ = 1.0e6


@dataclass(frozen=True)
class Nuclide:
    """Decay data of one radionuclide.

    Energies are mean energies emitted per decay, in MeV.
    """

    name: str
    half_life_h: float
    electron_energy_per_decay_mev: float
    photon_energy_per_decay_mev: float
    snomed_code: str
    gamma_lines_kev_yield: Tuple[Tuple[float, float], ...] = field(default_factory=tuple)
    beta_branches_endpoint_kev_intensity: Tuple[Tuple[float, float], ...] = field(default_factory=tuple)
    max_electron_range_water_mm: float = 0.0

    @property
    def decay_constant_per_h(self) -> float:
        return math.log(2.0) / self.half_life_h

    @property
    def decay_constant_per_s(self) -> float:
        return self.decay_constant_per_h / SECONDS_PER_HOUR

    @property
    def half_life_s(self) -> float:
        return self.half_life_h * SECONDS_PER_HOUR

    @property
    def electron_energy_j_per_mbq_h(self) -> float:
        """Electron energy emitted per MBq·h of time-integrated activity, in joule."""
        return self.electron_energy_per_decay_mev * MEV_TO_J * MBQ_TO_BQ * SECONDS_PER_HOUR

    @property
    def photon_energy_j_per_mbq_h(self) -> float:
        return self.photon_energy_per_decay_mev * MEV_TO_J * MBQ_TO_BQ * SECONDS_PER_HOUR

    def decay_factor(self, elapsed_h: float) -> float:
        """Fraction of activity remaining after ``elapsed_h`` hours of physical decay."""
        return math.exp(-self.decay_constant_per_h * elapsed_h)


LU177 = Nuclide(
    name="Lu-177",
    half_life_h=6.647 * 24.0,  # 159.528 h
    # beta- 0.133270 + internal conversion 0.013522 + Auger 0.001132 MeV
    electron_energy_per_decay_mev=0.147923,
    # gamma 0.031558 + X-ray 0.003540 MeV
    photon_energy_per_decay_mev=0.035098,
    snomed_code="447553000",
    gamma_lines_kev_yield=((208.366, 0.110), (112.950, 0.0640), (321.3, 0.0022), (249.7, 0.0021)),
    beta_branches_endpoint_kev_intensity=((498.3, 0.794), (385.3, 0.090), (176.5, 0.122)),
    max_electron_range_water_mm=1.8,
)
