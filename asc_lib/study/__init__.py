"""Layer 7, ``study``: what the notebooks show and the machinery that runs them.

- ``results``    the result tables beside the papers' (``05_results``)
- ``plots``      seaborn / matplotlib figures
- ``explore``    tables of the data-exploration notebook
- ``fidelity``   the official checkpoints on a real recording
- ``benchmark``  throughput, scaling and projections to the real data (``06_benchmarks``)
- ``report``     runs the notebooks headless and renders ``reports/index.html`` (``python -m asc_lib.study.report``)
- ``notebooks``  refreshing committed notebooks (``make notebooks``)

May import: ``methods``, ``training``, ``models``, ``features``, ``data``, ``config``.
"""
