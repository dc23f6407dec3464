"""Rasa's SQL tracker store, whose database errors never quote the events they were writing.

When a write to the tracker store fails (the database is locked, read-only, full, or goes away in the
middle of a turn), Rasa 3.6 falls back to memory and logs the error at ERROR. SQLAlchemy's errors
quote the statement's parameters, and an event's parameters are its JSON: what the person wrote. In
Rasa 3.6 only SQLAlchemy's truncation of long parameters (the first and last 150 characters) keeps the
text out, and the text of a message starts about 150 characters into its event. This store is Rasa's
`SQL` store with SQLAlchemy's `hide_parameters` on, so the error names the statement and nothing it
carried. Same table (`events`), same settings, so bot/privacy.py deletes from it as before.

Named in endpoints.yml and endpoints.prod.yml as `type: rasa_addons.tracker_store.SQLTrackerStore`.
"""

from __future__ import annotations

from typing import Any

from rasa.core.tracker_store import SQLTrackerStore as RasaSQLTrackerStore


class SQLTrackerStore(RasaSQLTrackerStore):
    """Rasa's SQL tracker store; its errors never show the values of a statement."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Connect as Rasa's `SQL` store does, then hide parameters in every error from this engine."""
        super().__init__(*args, **kwargs)
        # create_engine(hide_parameters=True) sets this attribute; Rasa builds the engine itself, and
        # SQLAlchemy 1.4 reads it from the engine each time an error is raised.
        self.engine.hide_parameters = True
