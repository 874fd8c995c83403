"""The phantom cycle in Slicer's Sample Data module (Slicer application only; generation is startnet.phantom.sample).

Slicer API read at tags v5.8.1 and v5.10.0 (Modules/Scripted/SampleData/SampleData.py, identical
for what is used here):
- ``SampleDataLogic.registerCustomSampleDataSource(category, sampleName, uris, fileNames, ...,
  customDownloader, thumbnailFileName)``: ``uris`` and ``fileNames`` are required even with a
  ``customDownloader`` (SampleDataSource checks that their lengths agree), but the Sample Data
  widget's button then calls ``customDownloader(source)`` instead of downloading anything.
- ``SampleDataLogic.downloadSample(name)`` (scripts) ignores ``customDownloader`` and would try
  the URI: scripts call :func:`loadSampleCycle` instead.
DICOMLib.DICOMUtils.importDicom(folder) (same at both tags) indexes the files into
``slicer.dicomDatabase`` without copying them.
"""

from __future__ import annotations

import logging
import os

import slicer

SAMPLE_CATEGORY = "START-NET"
SAMPLE_NAME = "START-NET phantom cycle"
# Never fetched (customDownloader); names the generator so the entry is self-explanatory.
SAMPLE_URI = "startnet-phantom://small/seed0"


def cacheDirectory() -> str:
    """Folder for generated sample data, beside Slicer's Sample Data downloads."""
    return os.path.join(slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory(), "START-NET")


def registerSampleData() -> None:
    """Add the phantom cycle to the Sample Data module (called once Slicer's startup has completed)."""
    import SampleData

    iconPath = os.path.join(os.path.dirname(os.path.dirname(__file__)), "Resources", "Icons", "StartNetCore.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=SAMPLE_CATEGORY,
        sampleName=SAMPLE_NAME,
        uris=SAMPLE_URI,
        fileNames="startnet-phantom-small",
        thumbnailFileName=iconPath,
        customDownloader=lambda source: loadSampleCycle(),
    )


def importIntoDicomDatabase(dicomDir: str) -> bool:
    """Index the files into Slicer's DICOM database (False when no database is open)."""
    database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        return False
    from DICOMLib import DICOMUtils

    return bool(DICOMUtils.importDicom(str(dicomDir)))


def loadSampleCycle(prompt: bool = True, cacheDir: str = None, openModule: bool = True):
    """Generate the phantom cycle on first use (numba needed), import it into the DICOM database, open the module.

    Returns the :class:`startnet.phantom.sample.SampleCycle`, or None when the user declined installing numba.
    """
    from StartNetCoreLib.dependencies import ensure_dependencies

    if not ensure_dependencies(["numba"], prompt=prompt):  # the phantom renderer is numba code
        return None
    from startnet.phantom.sample import ensure_sample_cycle

    with slicer.util.WaitCursor():
        sample = ensure_sample_cycle(cacheDir or cacheDirectory())
        imported = importIntoDicomDatabase(str(sample.dicom_dir))
    where = "in the DICOM database and " if imported else ""
    message = f"{SAMPLE_NAME} (patient {sample.manifest['patient_id']}) is {where}in {sample.dicom_dir}"
    logging.info(message)
    slicer.util.showStatusMessage(message, 10000)
    if openModule:
        _openTimepointRegistration(str(sample.dicom_dir))
    return sample


def _openTimepointRegistration(dicomDir: str) -> None:
    """Select Time-point Registration with the sample folder as its input (when the module has that field)."""
    import pathlib

    slicer.util.selectModule("TimepointRegistration")
    try:
        from TimepointRegistration import TimepointRegistrationLogic
    except ImportError:
        return
    parameterNode = TimepointRegistrationLogic().getParameterNode()
    if hasattr(parameterNode, "inputDirectory"):
        parameterNode.inputDirectory = pathlib.Path(dicomDir)
