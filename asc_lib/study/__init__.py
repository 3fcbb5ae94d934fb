"""Layer 7, ``study``: what the notebooks show and the machinery that runs them.

- ``results``    the result tables beside the papers' (``05_results``)
- ``plots``      seaborn / matplotlib figures
- ``explore``    tables of the data-exploration notebook
- ``fidelity``   the official checkpoints on a real recording
- ``benchmark``  throughput, scaling and projections to the real data (``06_benchmarks``)
- ``report``     the plan (which notebooks, parameters, order) and ``reports/index.html``
- ``workflow``   ``make report``'s front door: the plan through Snakemake (``workflow/Snakefile``), locally or on SLURM
- ``execute``    one notebook run of the plan (a workflow job): papermill, HTML, a GPU of its own
- ``notebooks``  refreshing committed notebooks (``make notebooks``)
- ``show``       the few lines that are a method, shown in its notebook from the library's source
- ``gpu_check``  ``make gpu-check``: every method's steps and a teacher pass on the GPU, against the CPU

May import: ``methods``, ``training``, ``models``, ``features``, ``data``, ``config``.
"""
