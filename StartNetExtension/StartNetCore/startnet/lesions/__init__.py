"""Lesion identity across a patient's cycles (the lesion register).

* :mod:`.match`: the rule (overlap fraction, centroid distance) and the one-to-one assignment;
* :mod:`.track`: cycles in order -> stable lesion IDs, new and not-seen lesions, per-lesion values;
* :mod:`.sources`: a cycle from a run folder or from memory, CT-to-CT transforms, ``--lesion-map``;
* :mod:`.table`: lesions.json/csv, a cycle's record for results.json, the trial tracker's summary;
* :mod:`.update`: the register for a cycle being run into the trial database.
"""
