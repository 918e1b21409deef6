"""The course: running the notebooks, their widgets, exercise checks, and the offline site.

Layer 5, the top of the package below the ``cli``: may import every other layer. ``runner``
executes the notebooks with a profile and shares their results; ``exercises`` checks students'
answers; ``widgets`` and ``callbacks`` are what a notebook shows; ``site`` writes the pages.
"""
