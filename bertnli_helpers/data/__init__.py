"""Data: SNLI and other NLI files read into pairs, tokenized, truncated and packed for BERT.

Layer 1, above the base modules (``errors``, ``files``, ``devices``, ``progress``, ``hub``), which
are all it may import. Nothing here knows about models or training: ``dataset`` turns pairs into
``<cls> p <sep> h <sep>`` ids and segments with a tokenizer and a truncation strategy.
"""
