"""`deadletter.record`: make a dead letter durable (store table), acked only after the insert; and
`deadletters.resend`: the scheduler's sweep that publishes again a ledgered letter whose message was lost."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from coachup.deadletters import DeadLetter
from coachup.store.deadletters import StoreDeadLetters

from ..base import task_options
from ..deadletter import resend_lost_letters
from ..enqueue import PUBLISH_ERRORS
from ..signals import dead_lettered

__all__ = ["register"]

_STORE_ERRORS = (DBAPIError, OSError)  # the store is down or busy: wait for it


def register(app) -> None:
    @app.task(
        **task_options(
            app,
            "deadletter.record",
            ignore_result=True,
            autoretry_for=_STORE_ERRORS,
            dont_autoretry_for=(),
            soft_time_limit=20,  # one insert; a stuck store connection must not hold a child
            time_limit=30,
        )
    )
    def record_dead_letter(self, letter: dict, ledgered: bool = False) -> dict:
        """Insert the dead letter once and drop its ledger marker; a redelivered (or resent) record message
        inserts nothing and signals nothing.

        A store error retries with backoff, forever (`max_retries=None`): a dead letter is never dropped
        while the store is down. A malformed record fails once and is logged (`task_failure`).
        """
        parsed = DeadLetter.from_dict(letter)
        created = StoreDeadLetters(self.runtime.store).add(parsed, ledgered=ledgered)
        if created:
            dead_lettered.send(sender=self, letter=parsed)
        return {"id": parsed.id, "created": created}

    # one bounded pass (at most 200 letters): a stuck store or broker must not hold a child
    @app.task(**task_options(app, "deadletters.resend", ignore_result=True, soft_time_limit=20, time_limit=30))
    def resend_letters(self) -> dict:
        """Publish again every ledgered letter the broker lost; the next tick looks again if it is down."""
        rt = self.runtime
        try:
            return {"resent": resend_lost_letters(self.app, rt.store, rt.settings.deadletter_resend_after_s)}
        except PUBLISH_ERRORS:
            return {"resent": 0}
