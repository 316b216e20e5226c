"""Data layer: image decoding, preprocessing specs, readers, degradations, synthetic sample.

Torch-free modules: ``images``, ``preprocess``, ``readers``, ``degrade``, ``align``, ``synthetic``.
``dataset`` (the torch ``FaceDataset``) imports torch.
"""
