"""On-disk cache of raw full-model embeddings, keyed by (FR weights hash, image relpath, flip).

One SQLite file per FR model and precision (``<cache_dir>/embeddings-<sha16>[-bf16].sqlite``). Each row also
stores a file fingerprint (size and modification time), so a different image with the
same relative path (another images root) is recomputed, not served stale. SQLite
handles concurrent writers (several ``torchrun`` ranks) with its own locking.

Example:
    >>> c = EmbeddingCache("/tmp/edgefiq-cache", "ab" * 32)     # doctest: +SKIP
    >>> c.put_many(["a.jpg"], False, ["10:1"], np.ones((1, 4), np.float32))   # doctest: +SKIP
    >>> c.get_all(["a.jpg"], False, ["10:1"]).shape              # doctest: +SKIP
    (1, 4)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np


def fingerprint(path: Path) -> str:
    """``"<size>:<mtime_ns>"`` of a file (``"missing"`` if it cannot be stat'ed)."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


class EmbeddingCache:
    """Raw float32 embeddings of one FR model."""

    def __init__(self, cache_dir: str | Path, weights_sha256: str, variant: str = "") -> None:
        """``variant`` (e.g. ``"bf16"``) keeps embeddings computed another way in their own file."""
        self.path = Path(cache_dir) / f"embeddings-{weights_sha256[:16]}{'-' + variant if variant else ''}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=600)
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (relpath TEXT, flip INTEGER, fp TEXT, vec BLOB, "
                         "PRIMARY KEY (relpath, flip))")
        self._db.commit()

    def get_all(self, relpaths: Sequence[str], flip: bool, fps: Sequence[str]) -> np.ndarray | None:
        """All embeddings ``[N, D]`` if every relpath is cached with a matching fingerprint, else ``None``."""
        if not relpaths:
            return None
        rows: dict[str, tuple[str, bytes]] = {}
        names = list(relpaths)
        for i in range(0, len(names), 500):
            part = names[i:i + 500]
            q = f"SELECT relpath, fp, vec FROM emb WHERE flip=? AND relpath IN ({','.join('?' * len(part))})"
            for rel, fp, vec in self._db.execute(q, [int(flip), *part]):
                rows[rel] = (fp, vec)
        out = []
        for rel, fp in zip(relpaths, fps):
            hit = rows.get(rel)
            if hit is None or hit[0] != fp:
                return None
            out.append(np.frombuffer(hit[1], np.float32))
        return np.stack(out)

    def put_many(self, relpaths: Sequence[str], flip: bool, fps: Sequence[str], emb: np.ndarray) -> None:
        """Insert or replace embeddings (one transaction)."""
        emb = np.ascontiguousarray(emb, np.float32)
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)",
                                 [(r, int(flip), fp, emb[i].tobytes()) for i, (r, fp) in enumerate(zip(relpaths, fps))])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])
