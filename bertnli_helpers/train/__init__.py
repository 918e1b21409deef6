"""Training: the fine-tuning loop, its recipe, objectives, optimizer, run folders, pretraining.

Layer 3: may import ``model``, ``data`` and the base modules. ``config`` holds ``TrainConfig`` and
the named presets; ``loop`` is ``fine_tune``; ``runs`` makes and resumes a run folder (what the CLI
and the course call); ``distributed`` adds ``torchrun``; ``pretraining`` is the book's MLM + NSP.
"""
