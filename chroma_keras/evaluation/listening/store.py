"""Ratings of a listening test, stored durably in SQLite, exported to CSV and summarised with intervals."""

from __future__ import annotations

import csv
import pathlib
import sqlite3
import threading
import time

import numpy as np

from chroma_keras.errors import ModelInputError

RATING_RANGE = (1, 5)
CHOICES = ("real", "generated")
CSV_FIELDS = ("listener", "item", "rating", "choice", "kind", "colour", "created")


class RatingStore:
    """One listening session's ratings in ``ratings.sqlite`` (WAL journal, one row per listener and item).

    Args:
        path: the database file (created with its table when missing).
        items: the session's items (``load_items``), which say what each item really is.
    """

    def __init__(self, path, items):
        self.path = pathlib.Path(path)
        self.items = {item["id"]: item for item in items}
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS ratings (listener TEXT NOT NULL, item TEXT NOT NULL, rating INTEGER NOT NULL, "
                "choice TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (listener, item))"
            )

    def _connect(self):
        return sqlite3.connect(self.path, timeout=30)

    def add(self, listener: str, item: str, rating: int, choice: str) -> None:
        """Store one answer (a listener rating an item again replaces the first answer).

        Raises:
            ModelInputError: an empty listener, an unknown item, a rating outside 1-5 or a bad choice.
        """
        listener = str(listener).strip()
        if not listener or len(listener) > 100:
            raise ModelInputError("listen: a listener name of 1 to 100 characters is required.")
        if item not in self.items:
            raise ModelInputError(f"listen: unknown item {item!r}.")
        try:
            rating = int(rating)
        except (TypeError, ValueError):
            raise ModelInputError(f"listen: rating must be an integer in {RATING_RANGE}. Received: {rating!r}") from None
        if not RATING_RANGE[0] <= rating <= RATING_RANGE[1]:
            raise ModelInputError(f"listen: rating must be an integer in {RATING_RANGE}. Received: {rating!r}")
        if choice not in CHOICES:
            raise ModelInputError(f"listen: choice must be one of {CHOICES}. Received: {choice!r}")
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?)", (listener, item, rating, choice, time.time()))

    def rated_by(self, listener: str) -> set:
        """The items a listener has answered."""
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT item FROM ratings WHERE listener = ?", (listener,))}

    def rows(self) -> list[dict]:
        """Every answer with what the item really was (``CSV_FIELDS``)."""
        with self._connect() as db:
            found = db.execute("SELECT listener, item, rating, choice, created FROM ratings ORDER BY created").fetchall()
        return [
            {
                "listener": listener,
                "item": item,
                "rating": rating,
                "choice": choice,
                "kind": self.items[item]["kind"],
                "colour": self.items[item]["colour"],
                "created": created,
            }
            for listener, item, rating, choice, created in found
            if item in self.items
        ]

    def export_csv(self, path) -> pathlib.Path:
        """Write every answer to a CSV file (``CSV_FIELDS`` columns)."""
        path = pathlib.Path(path)
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows())
        return path

    def summary(self, seed: int = 0) -> dict:
        """Mean rating of real and of generated items and the listeners' identification accuracy, with intervals.

        Returns:
            ``{"real": Estimate | None, "generated": Estimate | None, "identified": Estimate | None,
            "listeners": int, "answers": int}``; an :class:`~chroma_keras.evaluation.intervals.Estimate`
            is None when there are fewer than two answers to compute it from.
        """
        from chroma_keras.evaluation.intervals import bootstrap_interval

        rows = self.rows()

        def estimate(values):
            values = np.asarray(values, np.float64)
            return bootstrap_interval(values, seed=seed) if len(values) >= 2 else None

        return {
            "real": estimate([r["rating"] for r in rows if r["kind"] == "real"]),
            "generated": estimate([r["rating"] for r in rows if r["kind"] == "generated"]),
            "identified": estimate([float(r["choice"] == r["kind"]) for r in rows]),
            "listeners": len({r["listener"] for r in rows}),
            "answers": len(rows),
        }


def format_summary(summary: dict) -> str:
    """The summary as lines of text (figures with their 95% bootstrap intervals)."""
    def show(name, estimate, unit=""):
        if estimate is None:
            return f"{name}: too few answers"
        return f"{name}: {estimate.value:.3g}{unit} [{estimate.low:.3g}, {estimate.high:.3g}] (95% CI, n={estimate.num_samples})"

    return "\n".join(
        [
            f"{summary['answers']} answers from {summary['listeners']} listeners",
            show("mean rating of real segments (1-5)", summary["real"]),
            show("mean rating of generated segments (1-5)", summary["generated"]),
            show("real/generated identified correctly (chance 0.5)", summary["identified"]),
        ]
    )
