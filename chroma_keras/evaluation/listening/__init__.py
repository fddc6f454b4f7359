"""A blind listening test: real and generated segments rated in a local web page, stored in SQLite.

* :mod:`.session` builds a session folder: the segments' audio and piano-roll images under
  opaque ids, and ``items.json`` saying which are real (never sent to the page).
* :mod:`.store` keeps the ratings durably in ``ratings.sqlite`` and summarises them.
* :mod:`.server` serves the page (``chroma-keras listen``).
"""

from chroma_keras.evaluation.listening.session import build_session, load_items
from chroma_keras.evaluation.listening.store import RatingStore

__all__ = ["RatingStore", "build_session", "load_items"]
