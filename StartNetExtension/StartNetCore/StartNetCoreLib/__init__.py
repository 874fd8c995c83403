"""Slicer-application helpers shared by the START-NET modules (needs Qt and slicer.app).

Pure computation lives in the ``startnet`` package; MRML conversions in ``startnet.mrml``.
This package only holds what every module widget repeats: the parameter-node wiring, progress
dialogs with cancel, and on-demand installation of optional Python dependencies.
"""
