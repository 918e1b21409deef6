"""Models: the BERT encoder and classifier, their checkpoints, precision, and inference.

Layer 2: may import ``data`` and the base modules. ``bert`` is the network, ``pretrained`` loads
weights into it (the book's zips, Hugging Face folders, ``minilm``, ``scratch``), ``checkpoints``
reads and writes run files, ``precision`` decides bf16/fp16/fp32, and ``inference`` evaluates and
predicts, so that analysis and widgets need no training code.
"""
