"""dicomio: paralysable dead time from each head's total-spectrum count rate, never the reconstruction.

Scenario (4 h after 7.4 GBq 177Lu, two heads, 60 views x 20 s): head 1 sees 42 kcps over its four
windows (113 keV 16, 208 keV photopeak 14, lower scatter 9, upper scatter 3 kcps), head 2 (more
attenuation) 85 % of that. The reconstruction holds the scatter-corrected photopeak of both heads:
about 20.7 kcps. With tau = 4.6 us (REFERENCE.md section 3) the old code's factor (rate of the
reconstructed sum) is 1.112; the heads' true factors are 1.281 and 1.222 (count-weighted 1.254):
the old correction left the activity 11 % low.
"""

from __future__ import annotations

import datetime as dt
import math
import os

import dicom_factory as f
import numpy as np
import pytest
from pydicom.uid import generate_uid
from scipy.optimize import brentq
from test_dicomio_units import INJ, stored_volume

from startnet.cli import main as cli_main
from startnet.dicomio import Overrides, load_cycle
from startnet.errors import InputError

TAU_S = 4.6e-6
VIEWS, VIEW_S = 60, 20.0
T_S = VIEWS * VIEW_S
HEAD1_KCPS_BY_WINDOW = (16.0, 14.0, 9.0, 3.0)  # 113 keV, 208 keV, lower and upper scatter
HEAD2_SHARE = 0.85
RECON_CPS = (14.0 + 14.0 * HEAD2_SHARE) * 1e3 * 0.8  # photopeak of both heads after scatter correction


def true_factor(observed_cps: float) -> float:
    """R/R_obs of a paralysable detector by root finding (independent of the Lambert W code)."""
    return brentq(lambda r: r * math.exp(-r * TAU_S) - observed_cps, observed_cps, 1.0 / TAU_S) / observed_cps


def projection_counts() -> np.ndarray:
    """counts[window, head, view]."""
    per_view = np.array(HEAD1_KCPS_BY_WINDOW) * 1e3 * VIEW_S
    heads = np.stack([per_view, per_view * HEAD2_SHARE], axis=1)  # (window, head)
    return np.round(np.repeat(heads[:, :, None], VIEWS, axis=2))


RECON_SLOPE = 64.0  # the reconstruction's counts do not fit uint16 without a rescale slope


def recon_volume() -> np.ndarray:
    """Stored values; counts = stored x RECON_SLOPE, summing to RECON_CPS x T."""
    vol = stored_volume().astype(np.float64)
    return np.round(vol * (RECON_CPS * T_S / RECON_SLOPE / vol.sum())).astype(np.uint16)


def write_timepoint(folder, hours: float, with_projections: bool = True, **proj_kwargs) -> dict:
    acquisition = INJ + dt.timedelta(hours=hours)
    written = f.spect_and_ct(str(folder), recon_volume(), acquisition=acquisition, injection=INJ, units="CNTS",
                             rescale_slope=RECON_SLOPE, frame_duration_ms=T_S * 1000)
    if with_projections:
        written["projections"] = f.write_nm_projections(
            os.path.join(str(folder), "NM", "projections"), projection_counts(), acquisition=acquisition,
            study_uid=written["study_uid"], view_ms=VIEW_S * 1000, **proj_kwargs)
    return written


def expected_heads():
    counts = projection_counts().sum(axis=(0, 2))
    rates = counts / T_S
    factors = [true_factor(r) for r in rates]
    return counts, rates, float(np.dot(counts, factors) / counts.sum())


def test_rate_from_projections_all_windows_per_head_not_the_reconstruction(tmp_path):
    write_timepoint(tmp_path, hours=4)
    plain = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0)).timepoints[0]
    tp = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, dead_time_s=TAU_S)).timepoints[0]
    conv = tp.conversion
    counts, rates, factor = expected_heads()
    old_factor = true_factor(recon_volume().sum(dtype=np.float64) * RECON_SLOPE / T_S)  # the old code's factor
    assert old_factor == pytest.approx(1.11, abs=0.01) and factor == pytest.approx(1.25, abs=0.01)
    assert old_factor / factor < 0.9  # the reconstruction's rate understates the correction by > 10 %
    assert conv["dead_time_factor"] == pytest.approx(factor, rel=1e-9)  # before the fix: 1.112 vs 1.254
    assert conv["count_rate_source"] == "projections"
    assert conv["count_rate_per_head_cps"] == pytest.approx(list(rates), rel=1e-9)
    assert conv["dead_time_factor_per_head"] == pytest.approx([true_factor(r) for r in rates], rel=1e-9)
    assert conv["observed_count_rate_cps"] == pytest.approx(np.dot(counts, rates) / counts.sum(), rel=1e-9)
    assert "projections" in conv["dead_time_correction"] and "Detector Vector" in conv["count_rate_detail"]
    assert tp.total_activity_mbq == pytest.approx(plain.total_activity_mbq * factor, rel=1e-6)
    assert plain.conversion["dead_time_correction"].startswith("not applied: no dead time")
    assert plain.conversion["count_rate_source"] is None


def test_missing_rate_with_dead_time_is_a_clear_error(tmp_path):
    written = write_timepoint(tmp_path, hours=4, with_projections=False)
    with pytest.raises(InputError, match="--count-rate-kcps") as err:
        load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, dead_time_s=TAU_S))
    message = str(err.value)
    assert written["spect"] in message and "no NM projection series (ImageType TOMO)" in message
    assert "\n" not in message


def test_projections_of_another_study_or_acquisition_are_not_used(tmp_path):
    write_timepoint(tmp_path, hours=4, with_projections=False)
    f.write_nm_projections(str(tmp_path / "other_study"), projection_counts(),
                           acquisition=INJ + dt.timedelta(hours=4), study_uid=generate_uid())
    with pytest.raises(InputError, match="no NM projection series"):
        load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, dead_time_s=TAU_S))


def test_override_rate_per_time_point_is_used_and_recorded(tmp_path):
    write_timepoint(tmp_path / "a", hours=4)
    write_timepoint(tmp_path / "b", hours=24, with_projections=False)
    overrides = Overrides(calibration_cps_per_mbq=9.0, dead_time_s=TAU_S, count_rate_kcps=(40.0, 30.0))
    cycle = load_cycle(str(tmp_path), overrides)
    for tp, kcps in zip(cycle.timepoints, (40.0, 30.0)):
        conv = tp.conversion
        assert conv["count_rate_source"] == "override"
        assert conv["count_rate_per_head_cps"] == [kcps * 1e3]
        assert conv["dead_time_factor"] == pytest.approx(true_factor(kcps * 1e3), rel=1e-9)
        assert "--count-rate-kcps" in conv["dead_time_correction"]
    assert cycle.overrides_applied["count_rate_kcps"] == [40.0, 30.0]
    with pytest.raises(InputError, match="--count-rate-kcps has 3 values but the cycle has 2 time points"):
        load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, dead_time_s=TAU_S,
                                            count_rate_kcps=(1.0, 2.0, 3.0)))
    with pytest.raises(InputError, match="count_rate_kcps"):
        Overrides(count_rate_kcps=(-5.0,))


def test_projections_without_detector_vector_split_equally_with_warning(tmp_path):
    write_timepoint(tmp_path, hours=4, detector_vector=False)
    cycle = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, dead_time_s=TAU_S))
    conv = cycle.timepoints[0].conversion
    mean_rate = projection_counts().sum() / 2 / T_S
    assert conv["count_rate_per_head_cps"] == pytest.approx([mean_rate, mean_rate], rel=1e-9)
    assert conv["dead_time_factor"] == pytest.approx(true_factor(mean_rate), rel=1e-9)
    assert any("without Detector Vector (0054,0020)" in w for w in cycle.warnings)


def test_unreadable_projection_pixels_fall_back_to_counts_accumulated(tmp_path):
    total = int(projection_counts().sum())

    def truncate(ds):
        ds.PixelData = ds.PixelData[:64]

    write_timepoint(tmp_path, hours=4, counts_accumulated=total, mutate=truncate)
    cycle = load_cycle(str(tmp_path), Overrides(calibration_cps_per_mbq=9.0, dead_time_s=TAU_S))
    conv = cycle.timepoints[0].conversion
    assert conv["count_rate_source"] == "header"
    assert "Counts Accumulated (0018,0070)" in conv["count_rate_detail"]
    assert conv["count_rate_per_head_cps"] == pytest.approx([total / 2 / T_S] * 2, rel=1e-9)
    assert any("projection pixel data unusable" in w for w in cycle.warnings)


def test_inspect_states_the_dead_time_source(tmp_path, capsys):
    write_timepoint(tmp_path, hours=4)
    code = cli_main(["inspect", str(tmp_path), "--calibration-cps-per-mbq", "9", "--dead-time-s", "4.6e-6"])
    out = capsys.readouterr().out
    assert code == 0 and "dead time paralysable, tau 4.6e-06 s, rate per head from projections" in out
    code = cli_main(["inspect", str(tmp_path), "--calibration-cps-per-mbq", "9", "--dead-time-s", "4.6e-6",
                     "--count-rate-kcps", "35"])
    out = capsys.readouterr().out
    assert code == 0 and "rate per head from override: --count-rate-kcps 35" in out
    code = cli_main(["inspect", str(tmp_path), "--calibration-cps-per-mbq", "9"])
    assert code == 0 and "dead time not applied: no dead time given (--dead-time-s)" in capsys.readouterr().out


def test_run_passes_dead_time_and_count_rate_through(tmp_path, capsys):
    write_timepoint(tmp_path / "in", hours=4, with_projections=False)
    args = ["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--quiet",
            "--calibration-cps-per-mbq", "9", "--dead-time-s", "4.6e-6"]
    assert cli_main(args) == InputError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--count-rate-kcps" in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # argparse refuses the value
        cli_main([*args, "--count-rate-kcps", "0,3"])
    assert "count rates must be > 0 kcps" in capsys.readouterr().err
