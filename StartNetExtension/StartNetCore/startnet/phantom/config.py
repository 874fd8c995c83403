"""Configuration of the digital phantom patient: presets, grids, acquisition and timing.

Two presets:
- ``small``: fast tests. CT 128 x 128 x 98 at 3.5 mm, SPECT 64 x 64 x 48 at 7.0 mm.
- ``clinical``: CT 512 x 512 x 312 at 0.9766 x 0.9766 x 2.0 mm (500 mm field of view),
  SPECT 128 x 128 x 128 at 4.7952 mm (Siemens Symbia-like reconstruction grid).

Both grids are axial (identity direction, LPS) and centred on the patient's body centre
(the anatomy's origin). The CT always covers the SPECT along z. Transaxially the SPECT field of
view (e.g. 614 mm) is wider than the CT's (500 mm), as on a real SPECT/CT: the body lies inside
both.

Time stamps: the injection date/time is an aware ``datetime``; DICOM local times are written in
Swedish civil time (CET +0100 / CEST +0200, EU daylight-saving rule), see :func:`swedish_utc_offset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional, Tuple

import numpy as np

from startnet.errors import InputError

PRESETS = ("small", "clinical")
UNITS = ("bqml", "counts")
TOTAL_DOSE_UNITS = ("MBq", "Bq")


@dataclass(frozen=True)
class GridSpec:
    """An axial image grid (identity direction) in LPS, centred on ``center_lps_mm``."""

    size_xyz: Tuple[int, int, int]
    spacing_mm: Tuple[float, float, float]
    center_lps_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def origin_lps_mm(self) -> Tuple[float, float, float]:
        """Physical position of voxel (0, 0, 0)'s centre."""
        return tuple(
            float(c - 0.5 * (n - 1) * s) for c, n, s in zip(self.center_lps_mm, self.size_xyz, self.spacing_mm)
        )

    @property
    def shape_zyx(self) -> Tuple[int, int, int]:
        return (self.size_xyz[2], self.size_xyz[1], self.size_xyz[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def axis_coordinates_mm(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """1-D physical coordinates of voxel centres along x, y and z."""
        origin = self.origin_lps_mm
        return tuple(
            origin[a] + self.spacing_mm[a] * np.arange(self.size_xyz[a], dtype=np.float64) for a in range(3)
        )


_PRESET_GRIDS = {
    "small": (GridSpec((128, 128, 98), (3.5, 3.5, 3.5)), GridSpec((64, 64, 48), (7.0, 7.0, 7.0))),
    "clinical": (
        GridSpec((512, 512, 312), (0.9765625, 0.9765625, 2.0)),
        GridSpec((128, 128, 128), (4.7952, 4.7952, 4.7952)),
    ),
}


def swedish_utc_offset(moment: datetime) -> timedelta:
    """UTC offset of Swedish civil time at an aware ``moment``: +1 h (CET) or +2 h (CEST).

    EU rule: summer time from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
    Sunday of October. Implemented here so no time-zone database is needed.
    """
    if moment.tzinfo is None:
        raise InputError(f"swedish_utc_offset: datetime {moment!r} has no time zone; expected an aware datetime")
    utc = moment.astimezone(timezone.utc)

    def last_sunday(year: int, month: int) -> datetime:
        day = datetime(year, month + 1, 1, 1, 0, tzinfo=timezone.utc) - timedelta(days=1)
        return day - timedelta(days=(day.weekday() - 6) % 7)

    start = last_sunday(utc.year, 3)
    end = last_sunday(utc.year, 10)
    return timedelta(hours=2) if start <= utc < end else timedelta(hours=1)


def to_swedish_local(moment: datetime) -> datetime:
    """The same instant as an aware datetime in Swedish civil time (fixed-offset tzinfo)."""
    offset = swedish_utc_offset(moment)
    return moment.astimezone(timezone(offset))


def format_utc_offset(offset: timedelta) -> str:
    """DICOM TimezoneOffsetFromUTC text, e.g. ``+0100``."""
    minutes = int(round(offset.total_seconds() / 60.0))
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


DEFAULT_INJECTION = datetime(2025, 5, 12, 9, 30, 0, tzinfo=timezone(timedelta(hours=2)))
CYCLE_INTERVAL = timedelta(weeks=8)  # between the default injections of successive cycles
# the patient's pose in cycles 2 and 3 relative to cycle 1 (translation mm, rotation about z deg):
# maps a point of this cycle's scanner space to the same anatomy in cycle 1's
CYCLE_POSES = {1: ((0.0, 0.0, 0.0), 0.0), 2: ((11.0, -7.0, 5.0), 3.0), 3: ((-9.0, 6.0, -4.0), -2.5)}


@dataclass
class PhantomConfig:
    """Everything that defines one synthetic 177Lu-DOTATOC cycle.

    ``frame_duration_s`` is the whole SPECT acquisition time T, written in the Rotation
    Information Sequence as ``projections_per_head`` views of T / projections_per_head each
    (whole milliseconds, see :attr:`acquisition_time_s`); counts relate to activity by
    ``N = CF * A(t_start) * (1 - exp(-lambda T)) / lambda`` (physical decay during the
    acquisition, CF = ``calibration_cps_per_mbq``).
    """

    preset: str = "small"
    seed: int = 0
    timepoints_h: Tuple[float, ...] = (4.0, 24.0, 96.0, 168.0)
    injected_activity_mbq: float = 7400.0
    noise: bool = True
    blur: bool = True
    motion: bool = True
    units: str = "bqml"
    calibration_cps_per_mbq: float = 5.5
    frame_duration_s: float = 1200.0
    projections_per_head: int = 30
    psf_fwhm_mm: float = 11.0
    ct_noise_hu: float = 15.0
    max_shift_mm: float = 4.0
    max_rotation_deg: float = 2.0
    # None: the time point closest to 24 h, the same default as ``startnet run --reference-timepoint``
    reference_index: Optional[int] = None
    injection_datetime: Optional[datetime] = None
    radionuclide_total_dose_units: str = "MBq"
    patient_id: str = "STARTNET-PH-001"
    patient_name: str = "Phantom^Digital"
    patient_birth_date: str = "19580314"
    patient_sex: str = "M"
    institution_name: str = "START-NET Digital Phantom Hospital"
    # the camera's DeviceSerialNumber (0018,1000): a calibration (startnet calibrate) is matched to it
    device_serial_number: str = "PH-0001"
    grid_override: Optional[Tuple[GridSpec, GridSpec]] = field(default=None, repr=False)
    # tumour kinetics variant (startnet.phantom.tacs.TUMOUR_KINETICS_VARIANTS): "default", or
    # "late_uptake" (tumour_1 still rising at 168 h, tumour_3 on a plateau)
    tumour_kinetics: str = "default"
    # treatment cycle of the same patient (1..3): tumours as anatomy.LESION_EVOLUTION
    # has them, the patient lying as CYCLE_POSES has it, injected 8 weeks after the previous cycle
    cycle_number: int = 1
    # paralysable dead time of each camera head (s; 0: no count losses). With a dead time the
    # reconstruction holds only the counts the heads kept, and each time point gets the NM TOMO
    # projections the camera recorded (startnet.phantom.deadtime, startnet.phantom.projections)
    dead_time_s: float = 0.0
    # each head's TRUE total-spectrum event rate per MBq in the patient (all energies, scatter included)
    head_total_cps_per_mbq: Tuple[float, ...] = (7.0, 6.0)
    # write the projections also without a dead time
    write_projections: bool = False

    def validate(self) -> None:
        """Raise :class:`InputError` naming the field if a value is unusable."""
        if self.preset not in PRESETS:
            raise InputError(f"PhantomConfig.preset: {self.preset!r} is not one of {PRESETS}")
        from startnet.phantom.tacs import TUMOUR_KINETICS_VARIANTS

        if self.tumour_kinetics not in TUMOUR_KINETICS_VARIANTS:
            raise InputError(f"PhantomConfig.tumour_kinetics: {self.tumour_kinetics!r} is not one of "
                             f"{sorted(TUMOUR_KINETICS_VARIANTS)}")
        if isinstance(self.cycle_number, bool) or not isinstance(self.cycle_number, int) \
                or self.cycle_number not in CYCLE_POSES:
            raise InputError(f"PhantomConfig.cycle_number: {self.cycle_number!r}; expected an integer "
                             f"1..{len(CYCLE_POSES)}")
        if self.units not in UNITS:
            raise InputError(f"PhantomConfig.units: {self.units!r} is not one of {UNITS}")
        if self.radionuclide_total_dose_units not in TOTAL_DOSE_UNITS:
            raise InputError(
                f"PhantomConfig.radionuclide_total_dose_units: {self.radionuclide_total_dose_units!r} "
                f"is not one of {TOTAL_DOSE_UNITS}"
            )
        times = [float(t) for t in self.timepoints_h]
        if not times or any(t <= 0 for t in times) or sorted(set(times)) != times:
            raise InputError(
                f"PhantomConfig.timepoints_h: {self.timepoints_h!r}; expected strictly increasing hours > 0"
            )
        if self.reference_index is not None and not 0 <= self.reference_index < len(times):
            raise InputError(
                f"PhantomConfig.reference_index: {self.reference_index} outside 0..{len(times) - 1}"
            )
        for name in ("injected_activity_mbq", "calibration_cps_per_mbq", "frame_duration_s", "psf_fwhm_mm"):
            if not float(getattr(self, name)) > 0:
                raise InputError(f"PhantomConfig.{name}: {getattr(self, name)!r}; expected a positive number")
        for name in ("ct_noise_hu", "max_shift_mm", "max_rotation_deg"):
            if float(getattr(self, name)) < 0:
                raise InputError(f"PhantomConfig.{name}: {getattr(self, name)!r}; expected >= 0")
        if self.projections_per_head < 1:
            raise InputError(f"PhantomConfig.projections_per_head: {self.projections_per_head}; expected >= 1")
        if not float(self.dead_time_s) >= 0:
            raise InputError(f"PhantomConfig.dead_time_s: {self.dead_time_s!r}; expected >= 0 s")
        rates = tuple(self.head_total_cps_per_mbq)
        if not rates or not all(float(r) > 0 for r in rates):
            raise InputError(f"PhantomConfig.head_total_cps_per_mbq: {rates!r}; expected one positive rate per head")
        if self.injection_datetime is not None and self.injection_datetime.tzinfo is None:
            raise InputError("PhantomConfig.injection_datetime: expected an aware datetime (with tzinfo)")

    @property
    def resolved_reference_index(self) -> int:
        """The reference time point: ``reference_index``, or the one closest to 24 h."""
        if self.reference_index is not None:
            return int(self.reference_index)
        times = [float(t) for t in self.timepoints_h]
        return min(range(len(times)), key=lambda i: abs(times[i] - 24.0))

    @property
    def ct_grid(self) -> GridSpec:
        return (self.grid_override or _PRESET_GRIDS[self.preset])[0]

    @property
    def spect_grid(self) -> GridSpec:
        return (self.grid_override or _PRESET_GRIDS[self.preset])[1]

    @property
    def writes_projections(self) -> bool:
        """Whether each time point gets its NM TOMO projections (always with a dead time)."""
        return bool(self.write_projections or self.dead_time_s > 0)

    @property
    def view_duration_ms(self) -> int:
        """Duration of one projection view in whole milliseconds (as DICOM IS stores it)."""
        return int(round(self.frame_duration_s * 1000.0 / self.projections_per_head))

    @property
    def acquisition_time_s(self) -> float:
        """Acquisition time T actually simulated and written: views x view duration."""
        return self.view_duration_ms * self.projections_per_head / 1000.0

    @property
    def torso_half_length_mm(self) -> float:
        """Half length of the patient's torso along z: inside the SPECT field of view with margin."""
        spect = self.spect_grid
        half = 0.5 * spect.size_xyz[2] * spect.spacing_mm[2]
        return half - max(15.0, 2.0 * spect.spacing_mm[2]) - self.max_shift_mm

    @property
    def injection_datetime_utc(self) -> datetime:
        moment = self.injection_datetime or DEFAULT_INJECTION + CYCLE_INTERVAL * (self.cycle_number - 1)
        return moment.astimezone(timezone.utc)

    @property
    def cycle_seed(self) -> int:
        """Seed of motion and noise: ``seed`` in cycle 1, another stream in each later cycle."""
        return int(self.seed) + 7919 * (self.cycle_number - 1)

    @property
    def uid_key(self) -> str:
        """What makes this cycle's DICOM UIDs unique (cycle 1 keeps the UIDs it always had)."""
        return str(self.seed) if self.cycle_number == 1 else f"{self.seed}-cycle{self.cycle_number}"
