"""The ctkDICOMDatabase calls the modules make (patients, studies, series, files), over a dict.

Slicer's DICOM database (CTK) is not in the slicer-core wheel; the module code that walks it is
written against these few methods (names and signatures as ctkDICOMDatabase.h has them at the
CTK commits Slicer 5.8.1 and 5.10.0 pin), so the tests serve the same calls from a dict of files.
"""

from __future__ import annotations


class DictDicomDatabase:
    isOpen = True

    def __init__(self, content, patient_name: str = "Phantom^Digital"):
        self.content = content  # {patient: {study: {series: files}}}
        self.patient_name = patient_name

    def patients(self):
        return list(self.content)

    def fieldForPatient(self, field, uid):
        return {"PatientID": f"ID-{uid}"}[field]

    def nameForPatient(self, uid):
        return self.patient_name

    def studiesForPatient(self, uid):
        return list(self.content[uid])

    def seriesForStudy(self, study):
        return [s for studies in self.content.values() for s in studies.get(study, {})]

    def filesForSeries(self, series):
        return next(files for studies in self.content.values() for series_map in studies.values()
                    for uid, files in series_map.items() if uid == series)
