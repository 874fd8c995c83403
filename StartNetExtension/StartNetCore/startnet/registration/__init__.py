"""Registration of all SPECT/CT time points of a cycle onto one reference time point."""
