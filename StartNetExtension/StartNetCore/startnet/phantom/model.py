"""Build the digital phantom patient in memory: ``build_phantom(PhantomConfig) -> Phantom``.

All images are SimpleITK images in LPS. ``Phantom.ct_hu`` and ``Phantom.labels`` are in the
reference pose (the reference time point's space). Each :class:`PhantomTimepoint` holds its CT
and SPECT in its own (moved) pose and ``true_transform`` mapping reference points to its space
(see :mod:`startnet.phantom.motion`). Deterministic for a given configuration (seed included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from startnet.errors import InputError
from startnet.phantom import anatomy, ctsim, motion, render
from startnet.phantom.config import CYCLE_POSES, GridSpec, PhantomConfig
from startnet.phantom.deadtime import HeadCounting, head_counting
from startnet.phantom.truth import (
    CompartmentTruth,
    activity_per_voxel_lut,
    compartment_truths,
    structure_truth,
    tia_per_voxel_lut,
)


@dataclass
class PhantomTimepoint:
    """One SPECT/CT visit of the synthetic patient (images in this visit's pose)."""

    index: int
    hours_post_injection: float
    acquisition_datetime: datetime  # aware, UTC
    ct_hu: sitk.Image  # Int16 HU on the CT grid
    spect_bqml: sitk.Image  # Float32 Bq/mL on the SPECT grid, blur/noise as configured
    activity_true_bqml: sitk.Image  # Float32 Bq/mL, noise-free and unblurred (exact activity)
    true_transform: sitk.Euler3DTransform  # reference physical point -> this time point's point
    counts: Optional[sitk.Image] = None  # UInt16 reconstructed counts when units == "counts"
    counts_per_mbq: float = 0.0  # expected counts per MBq at acquisition start (CF, T, decay)
    total_activity_mbq: float = 0.0  # true activity in the patient at acquisition start
    # each head's true and observed total-spectrum rate (startnet.phantom.deadtime); the SPECT holds
    # head_counting.kept_fraction of the counts an ideal camera would have recorded
    head_counting: Optional[HeadCounting] = None


@dataclass
class Phantom:
    config: PhantomConfig
    ct_hu: sitk.Image  # reference time point's CT (Int16, LPS)
    labels: sitk.Image  # UInt8 structure labels on the CT grid, reference pose
    label_names: Dict[int, str]
    timepoints: List[PhantomTimepoint]
    injection_datetime: datetime  # aware, UTC
    truth: Dict[str, object]
    reference_index: int
    compartments: np.ndarray = field(repr=False)  # internal (z, y, x) uint8 compartment map
    compartment_truths: Dict[str, CompartmentTruth] = field(repr=False, default_factory=dict)
    timings_s: Dict[str, float] = field(default_factory=dict)

    @property
    def structure_names(self) -> List[str]:
        return [self.label_names[k] for k in sorted(self.label_names)]

    def render_activity_bqml(self, index: int, structures: Optional[List[str]] = None,
                             blur: bool = False) -> sitk.Image:
        """Noise-free activity (Bq/mL) of the given structures (all if None) in time point ``index``."""
        tp = self.timepoints[index]
        lut = activity_per_voxel_lut(self.compartment_truths, tp.hours_post_injection)
        if structures is not None:
            unknown = [s for s in structures if s not in anatomy.STRUCTURE_LABELS]
            if unknown:
                raise InputError(f"Phantom.render_activity_bqml: unknown structures {unknown}")
            keep = np.zeros(256, dtype=bool)
            for c in anatomy.COMPARTMENTS:
                keep[c.index] = c.structure in structures
            lut = np.where(keep, lut, 0.0)
        return _render(self.config, self.compartments, lut, tp.true_transform, blur)

    def render_tia_mbq_h(self, structures: Optional[List[str]] = None) -> sitk.Image:
        """True time-integrated activity per SPECT voxel (MBq.h, float32), reference pose, no blur.

        Summed over a structure's voxels it gives the structure's ``tia_mbq_h`` in the truth; a dose
        engine fed with it isolates dose-engine errors from kinetic-fit errors.
        """
        lut = tia_per_voxel_lut(self.compartment_truths)
        if structures is not None:
            unknown = [s for s in structures if s not in anatomy.STRUCTURE_LABELS]
            if unknown:
                raise InputError(f"Phantom.render_tia_mbq_h: unknown structures {unknown}")
            keep = np.array([False] * 256)
            for c in anatomy.COMPARTMENTS:
                keep[c.index] = c.structure in structures
            lut = np.where(keep, lut, 0.0)
        identity = self.timepoints[self.reference_index].true_transform
        matrix, offset = motion.affine_parts(identity)
        tia = render.splat_activity(self.compartments, lut, self.config.ct_grid, self.config.spect_grid, matrix,
                                    offset)
        return _image(tia.astype(np.float32), self.config.spect_grid)

    def structure_fraction(self, index: int, structure: str) -> sitk.Image:
        """Fraction (0..1) of each SPECT voxel's true activity that belongs to ``structure``.

        For the noise-free, blur-free image, sum(image * fraction) * voxel volume is exactly the
        structure's activity, whatever the partial-volume mixing at its border.
        """
        # a copy: a view would outlive the temporary image it points into
        part = sitk.GetArrayFromImage(self.render_activity_bqml(index, [structure]))
        total = sitk.GetArrayViewFromImage(self.timepoints[index].activity_true_bqml)
        fraction = np.divide(part, total, out=np.zeros(part.shape, dtype=np.float32), where=total > 0)
        return _image(np.clip(fraction, 0.0, 1.0).astype(np.float32), self.config.spect_grid)


def _image(array: np.ndarray, grid: GridSpec) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(grid.spacing_mm)
    image.SetOrigin(grid.origin_lps_mm)
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return image


def _render(config: PhantomConfig, compartments: np.ndarray, lut: np.ndarray,
            transform: sitk.Euler3DTransform, blur: bool) -> sitk.Image:
    matrix, offset = motion.affine_parts(transform)
    activity = render.splat_activity(compartments, lut, config.ct_grid, config.spect_grid, matrix, offset)
    bqml = activity * 1.0e6 / config.spect_grid.voxel_volume_ml
    if blur:
        bqml = render.gaussian_psf(bqml, config.spect_grid.spacing_mm, config.psf_fwhm_mm)
    return _image(bqml.astype(np.float32), config.spect_grid)


def cycle_pose(cycle_number: int) -> sitk.Euler3DTransform:
    """Maps a point of cycle ``cycle_number``'s scanner space to the same anatomy in cycle 1's (config.CYCLE_POSES)."""
    shift_mm, angle_deg = CYCLE_POSES[cycle_number]
    pose = sitk.Euler3DTransform()
    pose.SetCenter(motion.ROTATION_CENTER_MM)
    pose.SetRotation(0.0, 0.0, float(np.deg2rad(angle_deg)))
    pose.SetTranslation(tuple(float(v) for v in shift_mm))
    return pose


def segment_names(truths: Dict[str, CompartmentTruth]) -> Dict[str, str]:
    """Anatomical structure -> its name in this cycle's segmentation, for the structures present.

    Tumours are numbered per cycle (tumour_1, tumour_2, ... in anatomical order among those
    present), as a clinic numbers the lesions of each scan: in cycle 2 the new lesion (anatomical
    tumour_5) is called tumour_4, the name the vanished lymph node had in cycle 1. Only the
    lesion register (:mod:`startnet.lesions`) can tell which is which; ``truth["cycle"]`` says.
    """
    voxels: Dict[str, int] = {}
    for t in truths.values():
        voxels[t.compartment.structure] = voxels.get(t.compartment.structure, 0) + t.voxels
    names, number = {}, 0
    for name in anatomy.STRUCTURE_LABELS:
        if voxels.get(name, 0) == 0:
            continue
        if name in anatomy.LESION_EVOLUTION:
            number += 1
            names[name] = f"tumour_{number}"
        else:
            names[name] = name
    return names


def _cycle_truth(truth: Dict[str, object], cycle_number: int, names: Dict[str, str],
                 pose: sitk.Euler3DTransform) -> None:
    """Truth keyed by this cycle's segment names; the lesions' identities and the cycle's pose."""
    structures = truth["structures"]
    truth["structures"] = {names[a]: ({**entry, "lesion": a} if a in anatomy.LESION_EVOLUTION else entry)
                           for a, entry in structures.items() if a in names}
    truth["cycle"] = {
        "number": cycle_number,
        "lesion_of_segment": {names[a]: a for a in anatomy.LESION_EVOLUTION if a in names},
        "lesions": {a: {"segment": names.get(a), "present": a in names,
                        "semi_axes_scale": anatomy.lesion_scale(a, cycle_number),
                        "volume_ml": structures[a]["volume_ml"] if a in names else 0.0,
                        "mean_dose_gy": structures[a]["mean_dose_gy"] if a in names else 0.0}
                    for a in anatomy.LESION_EVOLUTION},
        "pose_to_cycle_1": {**motion.transform_to_dict(pose),
                            "direction": "maps a point of this cycle's scanner space (LPS mm) to the same "
                                         "anatomy in cycle 1's (SimpleITK resampling convention)"},
    }


def build_phantom(config: Optional[PhantomConfig] = None) -> Phantom:
    """Build the synthetic patient, its time points and its ground truth (see module docstring)."""
    config = config or PhantomConfig()
    config.validate()
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    ct_grid, spect_grid = config.ct_grid, config.spect_grid
    comp = anatomy.paint_compartments(ct_grid, config.torso_half_length_mm, config.cycle_number)
    pose = cycle_pose(config.cycle_number)
    if config.cycle_number > 1:  # the patient lies differently on the table than in cycle 1
        posed = sitk.Resample(_image(comp, ct_grid), _image(comp, ct_grid), pose, sitk.sitkNearestNeighbor, 0)
        comp = sitk.GetArrayFromImage(posed).astype(np.uint8)
    counts = np.bincount(comp.ravel(), minlength=256)
    truths = compartment_truths(counts, ct_grid.voxel_volume_ml, config.injected_activity_mbq,
                                config.tumour_kinetics)
    labels = _image(anatomy.structure_lut()[comp], ct_grid)
    names = segment_names(truths)
    timings["anatomy"] = time.perf_counter() - start

    hours = [float(h) for h in config.timepoints_h]
    transforms = motion.motion_transforms(len(hours), config.resolved_reference_index, config.cycle_seed,
                                          config.max_shift_mm,
                                          config.max_rotation_deg, config.motion)
    seeds = np.random.SeedSequence([config.cycle_seed, 1177]).spawn(2 * len(hours))
    injection = config.injection_datetime_utc
    counts_per_mbq = render.counts_per_mbq(config.calibration_cps_per_mbq, config.acquisition_time_s)
    counts_per_bqml = spect_grid.voxel_volume_ml * 1.0e-6 * counts_per_mbq
    timepoints = []
    t_ct = t_spect = 0.0
    for index, (h, transform) in enumerate(zip(hours, transforms)):
        t0 = time.perf_counter()
        ct = ctsim.moved_ct(comp, ct_grid, transform, config.ct_noise_hu if config.noise else 0.0,
                            np.random.default_rng(seeds[2 * index]))
        t1 = time.perf_counter()
        lut = activity_per_voxel_lut(truths, h)
        true_img = _render(config, comp, lut, transform, blur=False)
        expected = sitk.GetArrayFromImage(true_img).astype(np.float64)
        if config.blur:
            expected = render.gaussian_psf(expected, spect_grid.spacing_mm, config.psf_fwhm_mm)
        total_activity_mbq = float(sum(t.tac.activity_mbq(h) for t in truths.values()))
        counting = head_counting(config, total_activity_mbq, f"time point {h:g} h")
        # the camera keeps only part of the events (dead time); a vendor Bq/mL image lacks them too
        expected_counts = np.maximum(expected, 0.0) * counts_per_bqml * counting.kept_fraction
        if config.noise:
            measured = np.random.default_rng(seeds[2 * index + 1]).poisson(expected_counts).astype(np.float64)
        else:
            measured = expected_counts
        counts_img = None
        if config.units == "counts":
            rounded = np.rint(measured)
            if rounded.max() > np.iinfo(np.uint16).max:
                raise InputError(
                    f"PhantomConfig: time point {h} h would need {rounded.max():.0f} counts in a voxel (> 65535); "
                    "lower calibration_cps_per_mbq or frame_duration_s")
            counts_img = _image(rounded.astype(np.uint16), spect_grid)
        spect = _image((measured / counts_per_bqml).astype(np.float32), spect_grid)
        t_spect += time.perf_counter() - t1
        t_ct += t1 - t0
        timepoints.append(PhantomTimepoint(
            index=index, hours_post_injection=h, acquisition_datetime=injection + timedelta(hours=h), ct_hu=ct,
            spect_bqml=spect, activity_true_bqml=true_img, true_transform=transform, counts=counts_img,
            counts_per_mbq=counts_per_mbq, total_activity_mbq=total_activity_mbq, head_counting=counting))
    timings["ct_timepoints"] = t_ct
    timings["spect_timepoints"] = t_spect

    t0 = time.perf_counter()
    truth = structure_truth(truths, comp, hours, ct_grid.voxel_volume_ml, ct_grid.spacing_mm,
                            config.injected_activity_mbq)
    truth["timepoints"] = [
        {"index": tp.index, "hours_post_injection": tp.hours_post_injection,
         "acquisition_datetime_utc": tp.acquisition_datetime.isoformat(),
         "total_activity_mbq": tp.total_activity_mbq,
         "dead_time_s": float(config.dead_time_s),
         "head_true_cps": tp.head_counting.true_cps, "head_observed_cps": tp.head_counting.observed_cps,
         "dead_time_kept_fraction": tp.head_counting.kept_fraction,
         "true_transform": motion.transform_to_dict(tp.true_transform)}
        for tp in timepoints]
    truth["injection"] = {"datetime_utc": injection.isoformat(), "activity_mbq": config.injected_activity_mbq}
    truth["reference_index"] = config.resolved_reference_index
    truth["tumour_kinetics"] = config.tumour_kinetics
    _cycle_truth(truth, config.cycle_number, names, pose)
    timings["truth"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    label_names = {anatomy.STRUCTURE_LABELS[k]: v for k, v in names.items()}
    return Phantom(config=config, ct_hu=timepoints[config.resolved_reference_index].ct_hu, labels=labels,
                   label_names=label_names, timepoints=timepoints, injection_datetime=injection, truth=truth,
                   reference_index=config.resolved_reference_index, compartments=comp, compartment_truths=truths,
                   timings_s=timings)
