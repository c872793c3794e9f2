"""Language side of GAP: action descriptions, the five prompt sets, text encoders, cached embeddings.

Nothing is read or built at import time; see `text.supervision.TextSupervision.build`.
"""
