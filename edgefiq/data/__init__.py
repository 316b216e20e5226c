"""Data layer: image decoding, preprocessing specs, readers, alignment, degradations, synthetic sample.

Torch-free modules: ``images`` (decode anything + the bad-image policy: ``SkipLog``,
``read_images``, ``load_or_skip``), ``preprocess`` (``Preprocess``), ``readers`` (folders,
identity trees, label CSVs, LFW pairs, insightface .bin), ``insightface`` (restricted
unpickler), ``align`` (5-point ArcFace alignment), ``degrade`` (seeded degradations and
degraded sets), ``synthetic`` (procedural SYNTHETIC faces), ``inspect`` (dataset reports).
``dataset`` (the torch ``FaceDataset``) imports torch.
"""
