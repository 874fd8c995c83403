"""Many cycles at once on a Dask cluster (``startnet batch``), resumable and fault tolerant.

    manifest     MANIFEST.csv or a folder of cycles -> validated rows (all errors before any work)
    fingerprint  what a row's outputs were made from (input files' UIDs and sizes, parameters)
    task         one row on a worker: skip if done, else ``startnet.cycle.run.run_cycle``
    trial        idempotent trial-database record of a row's result
    cluster      a local Dask cluster sized to the machine, or an existing scheduler
    runner       submits the rows, follows them, reports progress
    summary      OUT_DIR/summary.csv;  cohort: OUT_DIR/cohort.html (plots, outliers)
    cli          the ``startnet batch`` command

Dask is imported only by ``cluster`` and ``runner``, inside functions: ``import startnet`` and the
Slicer modules never need it (it is the optional extra ``startnet[batch]``).
"""
