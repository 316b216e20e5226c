"""Models: quality students (``students``), face recognition backbones (``fr``), checkpoints."""
