"""RT Dose Tissue Heterogeneity Correction (3004,0014) says what each dose engine does with the CT.

DICOM defined terms: IMAGE (image data used), ROI_OVERRIDE, WATER (the whole volume treated as water).
Local energy deposition divides each voxel's energy by its CT mass and vsv-density scales by the CT
density, so both are IMAGE; plain vsv is dose to water. Before, led was written as WATER. Without a
CT the engines use 1 g/mL everywhere, so every method is WATER.
"""

from __future__ import annotations

import numpy as np
import pytest

from startnet.dosimetry.engines import dose_maps
from startnet.dosimetry.methods import DOSE_METHODS, tissue_heterogeneity_correction


@pytest.fixture(scope="module")
def kernel():
    from startnet.dosimetry.kernels import get_kernel

    return get_kernel((4.8, 4.8, 4.8))


@pytest.mark.parametrize("name", list(DOSE_METHODS))
def test_term_matches_whether_the_engine_uses_the_density(name, kernel):
    tia = np.zeros((9, 9, 9), np.float32)
    tia[3:6, 3:6, 3:6] = 10.0
    voxel_ml = 4.8 ** 3 / 1000.0
    water = dose_maps(name, tia, voxel_ml, np.ones_like(tia), kernel).total_gy
    bone = dose_maps(name, tia, voxel_ml, np.full_like(tia, 1.9), kernel).total_gy
    uses_density = not np.allclose(water, bone, rtol=1e-4)
    term = tissue_heterogeneity_correction(name, with_ct_density=True)
    assert term in ("IMAGE", "ROI_OVERRIDE", "WATER")
    assert term == ("IMAGE" if uses_density else "WATER")


@pytest.mark.parametrize("name", list(DOSE_METHODS))
def test_without_ct_every_method_is_water(name):
    assert tissue_heterogeneity_correction(name, with_ct_density=False) == "WATER"


def test_led_and_vsv_density_are_image():
    assert DOSE_METHODS["led"].tissue_heterogeneity_correction == "IMAGE"
    assert DOSE_METHODS["vsv-density"].tissue_heterogeneity_correction == "IMAGE"
    assert DOSE_METHODS["vsv"].tissue_heterogeneity_correction == "WATER"
