"""Studies: comparisons with uncertainty, grids of variants, analysis, probes and figures.

Layer 4: may import ``train``, ``model``, ``data`` and the base modules. ``comparison`` is the one
rule for "better / worse / within noise"; ``grids`` runs variants x seeds and reads verdicts off
them, each cell run by an executor of ``backends`` (local processes, or Ray tasks on a cluster);
``reference`` reads the grids stored in ``benchmarks/results/``; ``analysis``, ``robustness``,
``debias``, ``probing`` and ``curves`` turn predictions and histories into findings; ``plots``
draws them; ``book`` and ``book_step`` run the book's own code.
"""
