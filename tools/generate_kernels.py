"""Regenerate the committed 177Lu dose-kernel tables (documented, reproducible generator).

Usage:  .venv/bin/python tools/generate_kernels.py [--profiles-only] [--quick]

1. Radial energy-deposition profiles in water (startnet.dosimetry.kernel_profiles):
   electrons from the allowed beta spectra of the three branches (relativistic Fermi function)
   plus IC lines, by a condensed-history Monte Carlo (Bethe CSDA loss, screened-Rutherford
   transport mean free path); photons from the gamma/X lines by a Klein-Nishina + photoelectric
   Monte Carlo. Fixed seeds -> identical output on rerun with the same numba/numpy versions.
   Written to startnet/dosimetry/kernels/lu177_radial_profiles.npz.
2. Voxel kernels (cube-to-cube integration, startnet.dosimetry.kernel_build) for the committed
   voxel sizes: electron kernel and photon near block, lu177_<size>mm.npz. The photon far field
   is rebuilt from the profile on load, keeping the committed files small.
Prints the energy balance of every kernel.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "StartNetExtension" / "StartNetCore"))

from startnet.dosimetry import kernel_profiles, kernels  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles-only", action="store_true", help="only regenerate the radial profiles")
    parser.add_argument("--kernels-only", action="store_true",
                        help="keep the committed radial profiles, rebuild only the voxel kernels")
    parser.add_argument("--quick", action="store_true", help="fewer Monte Carlo histories (for a trial run)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.kernels_only:
        profiles = kernel_profiles.load_profiles()
    elif args.quick:
        profiles = kernel_profiles.generate_radial_profiles(electrons_per_energy=200, photons_per_line=50_000)
    else:
        profiles = kernel_profiles.generate_radial_profiles()
    if not args.kernels_only:
        kernel_profiles.save_profiles(profiles)
    print(f"profiles: electrons {profiles.electron_shell_mev.sum():.6f} MeV/decay "
          f"(spectrum {profiles.electron_emitted_mev:.6f}), photons {profiles.photon_shell_mev.sum():.6f} "
          f"+ escaped {profiles.photon_escaped_mev:.6f} MeV/decay ({time.perf_counter() - start:.1f} s)")
    if args.profiles_only:
        return 0
    kernels._PROFILES.clear()
    kernels._MEMO.clear()
    for size_mm in kernels.COMMITTED_SIZES_MM:
        size = (size_mm, size_mm, size_mm)
        parts = kernels.build_kernel_parts(size, kernels.DEFAULT_PHOTON_RADIUS_MM)
        path = kernels.KERNEL_DIR / kernels._file_name(size, kernels.DEFAULT_PHOTON_RADIUS_MM)
        kernels.save_kernel_parts(parts, path)
        balance = kernels.get_kernel(size).energy_balance
        print(f"{path.name}: electron pre-normalisation {balance.electron_prenormalisation_deviation_percent:+.3f} %, "
              f"after {balance.electron_deviation_percent:+.4f} %; photon sum vs absorbed within "
              f"{balance.photon_radius_mm:g} mm {balance.photon_deviation_percent:+.3f} % "
              f"(absorbed fraction of Delta_ph {balance.photon_absorbed_fraction:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
