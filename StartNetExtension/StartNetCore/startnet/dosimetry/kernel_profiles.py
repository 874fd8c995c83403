"""Radial energy-deposition profiles of 177Lu in water: generation and the committed table.

The profiles are voxel-size independent: energy (MeV per decay) deposited in spherical shells
around a point source, separately for electrons (beta continuum + IC lines by the condensed-
history Monte Carlo of electron_transport.py; Auger energy in the innermost shell) and photons
(each gamma/X line by the Monte Carlo of photon_transport.py, weighted by its yield; L X-rays in
the innermost shell). ``tools/generate_kernels.py`` regenerates them (fixed seeds: reproducible)
and writes ``kernels/lu177_radial_profiles.npz``; voxel kernels of any size are then built from
that table by kernel_build.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import numpy as np

from startnet.errors import InputError
from startnet.physics.lu177 import LU177, Nuclide

GENERATOR_VERSION = "1.0"
KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
PROFILE_FILE = KERNEL_DIR / "lu177_radial_profiles.npz"


@dataclass(frozen=True)
class RadialProfiles:
    electron_edges_mm: np.ndarray
    electron_shell_mev: np.ndarray  # MeV per decay per shell (incl. Auger in shell 0)
    photon_edges_mm: np.ndarray
    photon_shell_mev: np.ndarray  # MeV per decay per shell (all lines, incl. local L X-rays)
    electron_emitted_mev: float  # spectrum total before normalisation to ICRP (MeV per decay)
    photon_emitted_mev: float
    photon_escaped_mev: float  # beyond the Monte Carlo escape radius (1000 mm)
    metadata: Dict[str, str]


def generate_radial_profiles(electrons_per_energy: int = 2000, photons_per_line: int = 1_000_000,
                             nuclide: Nuclide = LU177) -> RadialProfiles:
    from startnet.dosimetry.electron_transport import electron_radial_energy
    from startnet.dosimetry.photon_transport import photon_radial_energy
    from startnet.dosimetry.spectrum import lu177_spectrum

    spectrum = lu177_spectrum(nuclide)
    energies = np.concatenate([spectrum.beta_energy_mev, [e for e, _ in spectrum.electron_lines]])
    weights = np.concatenate([spectrum.beta_prob_per_decay, [y for _, y in spectrum.electron_lines]])
    e_edges, e_shells = electron_radial_energy(energies, weights, n_per_energy=electrons_per_energy)
    e_shells = e_shells.copy()
    e_shells[0] += spectrum.local_electron_mev
    p_shells = None
    escaped = 0.0
    p_edges = None
    for i, (energy, yield_per_decay) in enumerate(spectrum.photon_lines):
        p_edges, tally, esc = photon_radial_energy(energy, photons_per_line, seed=208 + i)
        p_shells = tally * yield_per_decay if p_shells is None else p_shells + tally * yield_per_decay
        escaped += esc * yield_per_decay
    p_shells[0] += spectrum.local_photon_mev
    meta = {
        "generator_version": GENERATOR_VERSION,
        "nuclide": nuclide.name,
        "electron_method": ("condensed-history MC in water: Bethe (ICRU 37, I=75 eV) CSDA loss, screened-"
                            "Rutherford transport-mfp deflection; allowed beta shapes with relativistic "
                            "Fermi function (3 branches) + IC lines; Auger local"),
        "photon_method": ("MC in infinite water: Klein-Nishina + photoelectric (anchored to NIST mu_en), "
                          "no coherent; gamma lines scaled to ICRP 107, K X-rays as 56 keV line"),
        "electrons_per_energy": str(electrons_per_energy),
        "photons_per_line": str(photons_per_line),
        "seeds": "electrons 177, photon line i 208+i",
    }
    return RadialProfiles(e_edges, e_shells, p_edges, p_shells, spectrum.electron_mev_per_decay,
                          spectrum.photon_mev_per_decay, escaped, meta)


def save_profiles(profiles: RadialProfiles, path: Path = PROFILE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, electron_edges_mm=profiles.electron_edges_mm, electron_shell_mev=profiles.electron_shell_mev,
        photon_edges_mm=profiles.photon_edges_mm, photon_shell_mev=profiles.photon_shell_mev,
        scalars=np.array([profiles.electron_emitted_mev, profiles.photon_emitted_mev,
                          profiles.photon_escaped_mev]),
        meta_keys=np.array(list(profiles.metadata.keys())), meta_values=np.array(list(profiles.metadata.values())))


def load_profiles(path: Path = PROFILE_FILE) -> RadialProfiles:
    if not Path(path).is_file():
        raise InputError(f"kernel profile table {path} is missing; run tools/generate_kernels.py")
    with np.load(path, allow_pickle=False) as data:
        scalars = data["scalars"]
        meta = dict(zip(data["meta_keys"].tolist(), data["meta_values"].tolist()))
        return RadialProfiles(data["electron_edges_mm"], data["electron_shell_mev"], data["photon_edges_mm"],
                              data["photon_shell_mev"], float(scalars[0]), float(scalars[1]),
                              float(scalars[2]), meta)
