"""Lumbar vertebrae of the digital patient: L1-L5 bodies separated by discs, red marrow in L2-L4.

Geometry (LPS mm, see :mod:`startnet.phantom.anatomy`): the spine column (elliptic cylinder
``anatomy.SPINE``) is cut by intervertebral discs (``DISC_MM`` thick, soft tissue) into vertebral
bodies ``BODY_HEIGHT_MM`` high centred at ``LUMBAR_CENTRES_Z_MM`` (L1 at the body centre, the
kidneys' centroids between L1 and L2 as in the usual anatomy). Above L1 and below L5 the column
stays continuous (thoracic spine, sacrum). L2, L3 and L4 each have their own cortical shell
(``anatomy.SPINE_CORTEX_MM``, end plates included) and marrow interior, so their volumes and truths
are known per vertebra; L1 and L5 use the spine's compartments.

Marrow activity (the whole column's cancellous bone, L2-L4 each on its own): the red marrow follows
the blood (the phantom's ``body`` compartment is the blood/extracellular remainder, uniform over
the body volume): activity per gram of red marrow =
``RMBLR_TRUE`` x the blood concentration per mL, so the truth red-marrow self-dose is the
blood-based one, TIAC_blood x RMBLR x E_electron (:func:`startnet.phantom.blood.marrow_truth`).
Each vertebral body (cortex + interior) holds ``startnet.dosimetry.marrow_image``'s default red-marrow
mass per mL of vertebral body, placed in its interior: the phantom encodes the image-based
method's mass model, so a test on it checks the imaging chain (segmentation, partial volume,
kinetics), not the model's values, which are unverified assumptions.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

LEVELS = ("L1", "L2", "L3", "L4", "L5")
MARROW_LEVELS = ("L2", "L3", "L4")
LUMBAR_CENTRES_Z_MM: Dict[str, float] = {"L1": 0.0, "L2": -36.0, "L3": -72.0, "L4": -108.0, "L5": -144.0}
BODY_HEIGHT_MM = 27.0
DISC_MM = 9.0
DISC_HU = 80.0
RMBLR_TRUE = 1.0


def cortical_name(level: str) -> str:
    return f"vertebra_{level}_cortical"


def marrow_name(level: str) -> str:
    return f"vertebra_{level}_marrow"


def body_z_range_mm(level: str) -> Tuple[float, float]:
    centre = LUMBAR_CENTRES_Z_MM[level]
    return centre - 0.5 * BODY_HEIGHT_MM, centre + 0.5 * BODY_HEIGHT_MM


def disc_z_ranges_mm() -> Tuple[Tuple[float, float], ...]:
    """Discs above L1, between the bodies and below L5."""
    ranges = []
    for level in LEVELS:
        low, high = body_z_range_mm(level)
        ranges.append((high, high + DISC_MM))
    low, _ = body_z_range_mm(LEVELS[-1])
    ranges.append((low - DISC_MM, low))
    return tuple(ranges)


def paint_lumbar_spine(comp: np.ndarray, z_mm: np.ndarray, spine_2d: np.ndarray, spine_inner_2d: np.ndarray,
                       index_of: Dict[str, int], cortex_mm: float) -> None:
    """Cut the spine column of ``comp`` (z, y, x) into lumbar bodies and discs, L2-L4 with their own compartments."""
    for low, high in disc_z_ranges_mm():
        planes = (z_mm >= low) & (z_mm < high)
        for k in np.nonzero(planes)[0]:
            comp[k][spine_2d] = index_of["spine_disc"]
    for level in MARROW_LEVELS:
        low, high = body_z_range_mm(level)
        for k in np.nonzero((z_mm >= low) & (z_mm < high))[0]:
            plane = comp[k]
            plane[spine_2d] = index_of[cortical_name(level)]
            if low + cortex_mm <= z_mm[k] < high - cortex_mm:
                plane[spine_inner_2d] = index_of[marrow_name(level)]


def marrow_tacs(truths, body_tac, body_volume_ml: float, red_marrow_g_per_ml: float) -> Dict[str, object]:
    """Curves of the spine's marrow: blood concentration x RMBLR x red-marrow mass.

    Each L2-L4 marrow compartment holds ``red_marrow_g_per_ml`` x its vertebral body's volume; the rest of
    the column's cancellous bone (L1, L5, thoracic, sacrum) the same per mL of column (cortex + cancellous).
    """
    parts = {marrow_name(level): (cortical_name(level), marrow_name(level)) for level in MARROW_LEVELS}
    parts["spine_cancellous"] = ("spine_cortical", "spine_cancellous")
    out = {}
    for target, names in parts.items():
        marrow_g = red_marrow_g_per_ml * sum(truths[n].volume_ml for n in names)
        out[target] = body_tac.scaled(RMBLR_TRUE * marrow_g / body_volume_ml if body_volume_ml > 0 else 0.0)
    return out


def default_red_marrow_g_per_ml() -> float:
    from startnet.dosimetry.marrow_image import MarrowMassModel

    return MarrowMassModel().red_marrow_g_per_ml


def vertebra_truth(truths) -> Dict[str, Dict[str, float]]:
    """Per level: vertebral-body volume (mL, cortex + marrow), red-marrow mass (g) and marrow TIA (MBq h)."""
    per_ml = default_red_marrow_g_per_ml()
    out = {}
    for level in MARROW_LEVELS:
        volume = truths[cortical_name(level)].volume_ml + truths[marrow_name(level)].volume_ml
        out[level] = {"volume_ml": volume, "red_marrow_g": per_ml * volume,
                      "tia_mbq_h": truths[marrow_name(level)].tac.tia_mbq_h()}
    return out


def labels_with_vertebrae(phantom, first_value: int = 20):
    """(labelmap on the reference CT grid, {value: name}): the phantom's structures with vertebra_L2..L4 cut
    out of the spine, as a user would give them (e.g. from TotalSegmentator)."""
    import SimpleITK as sitk

    index = {name: truth.compartment.index for name, truth in phantom.compartment_truths.items()}
    labels = sitk.GetArrayFromImage(phantom.labels)
    names = dict(phantom.label_names)
    for value, level in enumerate(MARROW_LEVELS, start=first_value):
        inside = np.isin(phantom.compartments, [index[cortical_name(level)], index[marrow_name(level)]])
        labels[inside] = value
        names[value] = f"vertebra_{level}"
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(phantom.labels)
    return image, names


def image_based_truth(phantom, first_scan_h: float) -> Dict[str, float]:
    """Truth red-marrow self-dose (Gy): all of it, and the part of the blood curve that images starting at
    ``first_scan_h`` can see (its components whose half-life exceeds the first scan time; the faster ones,
    e.g. the 1.8 h renal clearance, are over before it)."""
    from startnet.phantom.tacs import KINETICS
    from startnet.physics.lu177 import LU177

    body = phantom.truth["structures"]["body"]
    tac = KINETICS["body"].tac(phantom.truth["injected_activity_mbq"], body["volume_ml"])
    to_gy = RMBLR_TRUE * LU177.electron_energy_j_per_mbq_h * 1000.0 / body["volume_ml"]
    late = sum(a / k for a, k in zip(tac.amplitudes_mbq, tac.rates_per_h) if np.log(2.0) / k > first_scan_h)
    return {"self_gy": tac.tia_mbq_h() * to_gy, "self_gy_seen_by_images": late * to_gy}
