"""Best-shot selection on video (torch-free): decode, track, align, score, keep each person's best crops.

``open_frames`` decodes (PyAV), ``make_tracker`` associates faces over frames (``trackers``), and
``BestShot`` is the per-frame loop; ``run_bestshot`` is ``edgefiq bestshot``. Needs the
``edgefiq[video]`` extra (PyAV, trackers).

Example:
    >>> from edgefiq.video import BestShot, open_frames   # doctest: +SKIP
"""

from edgefiq.video.bestshot import BestShot, Event, Shot, Sighting, Track
from edgefiq.video.source import Frame, VideoSource, open_frames, write_video
from edgefiq.video.track import make_tracker

__all__ = ["BestShot", "Event", "Frame", "VideoSource", "Shot", "Sighting", "Track", "make_tracker", "open_frames", "write_video"]
