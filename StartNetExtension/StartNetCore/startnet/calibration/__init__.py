"""Camera calibration from a site's own phantom scans: sensitivity, PSF and recovery (per camera).

``startnet calibrate`` (:mod:`.cli`) and ``startnet run --calibration`` (:mod:`.use`) share these
modules, each with one job:

- :mod:`.camera`: the camera's identity and reconstruction settings as the DICOM header states them;
- :mod:`.acquisition`: one calibration SPECT read with the same discovery, timing and unit rules as a
  patient cycle (``startnet.dicomio``);
- :mod:`.calfile`: ``CAL.json`` (read, validate, merge one camera's results; another camera refused);
  :mod:`.filelock`: concurrent writers of one CAL.json serialised by a lock, the file replaced atomically;
- :mod:`.sensitivity`: cps/MBq from a uniform source of known activity (or the vendor's Bq/mL check);
- :mod:`.spheres`: ``SPHERES.json`` and the spheres' voxel shares; :mod:`.psf_fit`: the PSF FWHM that
  best explains all spheres; :mod:`.recovery`: recovery coefficients per sphere;
- :mod:`.compare`: several sites' files side by side (table, HTML, recovery-curve plot);
- :mod:`.use`: choosing the file for a patient's camera and what it supplies to a run;
- :mod:`.patient_psf`: the effective resolution of a patient's own SPECT around its structures.
"""

from __future__ import annotations
