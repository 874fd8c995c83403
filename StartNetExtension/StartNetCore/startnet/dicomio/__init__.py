"""DICOM discovery and quantitative SPECT/CT ingestion: a cycle folder -> calibrated time points."""
