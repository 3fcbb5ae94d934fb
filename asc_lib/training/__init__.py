"""Layer 5, ``training``: how any method is trained, evaluated and recorded.

- ``device``       which device, and how it runs there (``auto``, its loud failure, TF32, teacher precision)
- ``distributed``  process-group helpers; a single process is a world of one
- ``loop``         :func:`fit` (set-up, resume, one epoch), batches, objectives' base, run fingerprints
- ``evaluate``     batched inference, the challenge metric and its breakdowns, ``output.csv``
- ``distill``      teacher outputs (cached, resumable, sharded over ranks) and the probability-MSE objective
- ``experiment``   the one way to run a method: :class:`RunSpec`, the task, :func:`train_and_evaluate`
- ``uncertainty``  bootstrap intervals over whole test recordings, paired comparisons, the one verdict function

May import: ``models``, ``features``, ``data``, ``config``.
"""
