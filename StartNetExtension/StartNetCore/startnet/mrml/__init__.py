"""The only place that imports ``slicer``: MRML nodes <-> numpy arrays and SimpleITK images.

Every function takes the MRML scene explicitly, so it works inside the Slicer application and
headless with the ``slicer-core`` wheel alike.
"""
