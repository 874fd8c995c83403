"""Digital phantom patient with known kinetics that writes realistic DICOM and its ground truth."""
