"""``make bench`` (report): report rendering, RT Dose and DICOM SEG export at clinical size.

Grid: dose/CT on 128^3 voxels of 4.8 mm with 6 structures; reference CT 512 x 512 x 300 (header
only datasets: the SEG writer needs geometry, not CT pixels). Ratios compare each export with
the least work it must do, measured in the same run:
- RT Dose: vs writing the same uint32 bytes with numpy (the DICOM overhead);
- DICOM SEG: vs one SimpleITK nearest-neighbour resample of every mask onto the whole CT volume
  (the SEG writer resamples only each mask's bounding box and encodes only occupied frames).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np


def _ct_headers(n_slices: int, rows: int, spacing_mm: float, thickness_mm: float):
    from pydicom.dataset import Dataset
    from pydicom.uid import CTImageStorage, generate_uid

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(n_slices):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "SN-BENCH", "SN-BENCH^", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = (
            "20260302", "081500", "1", "", "")
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = "CT", 1, k + 1, "bench"
        ds.ImagePositionPatient = [-rows * spacing_mm / 2, -rows * spacing_mm / 2, -450.0 + k * thickness_mm]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing_mm, spacing_mm]
        ds.SliceThickness = thickness_mm
        ds.Rows = ds.Columns = rows
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        out.append(ds)
    return out


def _ellipsoid(shape, centre, radii):
    z, y, x = np.ogrid[0:shape[0], 0:shape[1], 0:shape[2]]
    return (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2) <= 1.0


def run(table) -> None:
    import SimpleITK as sitk

    from startnet.report.dicom_seg import write_dicom_seg
    from startnet.report.model import ReportInput, TacPlotData
    from startnet.report.render import write_report
    from startnet.report.rtdose import write_rtdose

    shape, spacing = (128, 128, 128), 4.8
    origin = (-shape[2] * spacing / 2, -shape[1] * spacing / 2, -450.0)
    centres = {"kidney_left": (64, 70, 80), "kidney_right": (62, 70, 48), "liver": (72, 56, 44),
               "spleen": (72, 66, 88), "tumour_1": (60, 50, 66), "tumour_2": (80, 60, 60)}
    radii = {"kidney_left": (12, 6, 5), "kidney_right": (12, 6, 5), "liver": (14, 16, 18), "spleen": (8, 6, 6),
             "tumour_1": (4, 4, 4), "tumour_2": (3, 3, 3)}
    masks = {n: _ellipsoid(shape, centres[n], radii[n]) for n in centres}
    body = _ellipsoid(shape, (64, 64, 64), (70, 40, 55))
    ct = np.where(body, 40.0, -1000.0).astype(np.float32)
    rng = np.random.default_rng(1)
    dose = np.where(body, 0.2, 0.0) + rng.uniform(0, 0.05, shape)
    for i, mask in enumerate(masks.values()):
        dose[mask] += 2.0 + 3.0 * i
    times = np.array([4.0, 24.0, 96.0, 168.0])
    tacs = {n: TacPlotData(times, 50 * np.exp(-times / 80), None, np.linspace(0, 200, 100),
                           50 * np.exp(-np.linspace(0, 200, 100) / 80), "mono-exponential") for n in masks}
    results = {"schema_version": 1, "patient_id": "SN-BENCH", "cycle": 1, "method": "vsv",
               "injected_activity_mbq": 7400.0, "structures": {n: {"mean_gy": float(dose[m].mean())}
                                                               for n, m in masks.items()},
               "kidneys_mean_gy": 4.0, "warnings": []}
    tmp = tempfile.mkdtemp(prefix="startnet-bench-report-")
    try:
        inp = ReportInput(results=results, dose_gy=dose, spacing_mm=(spacing,) * 3, ct_hu=ct, masks=masks, tacs=tacs)
        start = time.perf_counter()
        write_report(inp, os.path.join(tmp, "report"))
        report_s = time.perf_counter() - start
        table.add("write_report (PDF + HTML + 4 PNG), 128^3 grid, 6 structures", f"{report_s:.2f} s",
                  note="DVHs computed from the masks; includes matplotlib rendering")

        image = sitk.GetImageFromArray(dose)
        image.SetSpacing((spacing,) * 3)
        image.SetOrigin(origin)
        reference = {"PatientID": "SN-BENCH", "StudyInstanceUID": "1.2.3", "FrameOfReferenceUID": "1.2.4"}
        start = time.perf_counter()
        write_rtdose(image, os.path.join(tmp, "rtdose.dcm"), reference=reference)
        rtdose_s = time.perf_counter() - start
        start = time.perf_counter()
        np.rint(dose / (dose.max() / 4.29e9)).astype("<u4").tofile(os.path.join(tmp, "raw.u4"))
        raw_s = time.perf_counter() - start
        table.add("write_rtdose 128^3 vs numpy raw uint32 write", f"{rtdose_s:.3f} s vs {raw_s:.3f} s",
                  ratio=rtdose_s / raw_s, target="<= 5x")

        ct_headers = _ct_headers(300, 512, 0.98, 2.0)
        mask_images = {}
        for name, mask in masks.items():
            m = sitk.GetImageFromArray(mask.astype(np.uint8))
            m.SetSpacing((spacing,) * 3)
            m.SetOrigin(origin)
            mask_images[name] = m
        start = time.perf_counter()
        write_dicom_seg(mask_images, ct_headers, os.path.join(tmp, "seg.dcm"))
        seg_s = time.perf_counter() - start
        ref = sitk.Image(512, 512, 300, sitk.sitkUInt8)
        ref.SetSpacing((0.98, 0.98, 2.0))
        ref.SetOrigin(tuple(float(v) for v in ct_headers[0].ImagePositionPatient))
        start = time.perf_counter()
        for m in mask_images.values():
            sitk.Resample(m, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        resample_s = time.perf_counter() - start
        size_mb = os.path.getsize(os.path.join(tmp, "seg.dcm")) / 1e6
        table.add("write_dicom_seg 6 structures onto CT 512x512x300 vs whole-volume resamples",
                  f"{seg_s:.2f} s vs {resample_s:.2f} s", ratio=seg_s / resample_s, target="<= 1.5x",
                  note=f"SEG file {size_mb:.1f} MB (occupied frames only)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
