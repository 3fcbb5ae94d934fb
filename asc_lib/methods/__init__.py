"""Layer 6, ``methods``: the two papers' stages, each module one step of a report.

- ``labelfilter``       Surkov 1: AudioSet segments carrying his 14 labels, seeded subsets
- ``meanteacher``       Surkov 2: the mean-teacher objective
- ``surkov``            Surkov 2-3: teacher weights and input, fine-tuning runs, unlabeled pieces, the teacher's outputs
- ``mt_ablation``       Surkov 2, the study's own: the mean-teacher ablation and the consistency-weight sweep
- ``pruning``           Werning 1: the linear domain classifier, thresholds, random controls
- ``domain_selection``  Werning 1: PaSST logits of both domains, the selections and pruning reports
- ``werning``           Werning 2-3: multi-label KD into a 527-class CP-Mobile, fine-tuning, run names
- ``cross_selection``   the study's own: each method fed by the other's AudioSet selection, at equal size
- ``tagger``            AudioSet taggers: the released ones as teachers, the mini stand-in, starting weights
- ``choices``           the mini recipes' settings, chosen on a validation part of the split
- ``kd_gap``            Surkov 3, a description: the student against its teacher by device group, longer runs
- ``registry``          every method: run name, label, paper, notebook; comparisons of runs
- ``torchrun``          the expensive stages under ``torchrun`` (``python -m asc_lib.methods.torchrun``)

May import: ``training``, ``models``, ``features``, ``data``, ``config``.
"""
