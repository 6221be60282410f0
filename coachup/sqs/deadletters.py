"""`SqsDeadLetters`: the `DeadLetterSource` over each SQS queue's own dead-letter queue (boto3 only).

- list/get peek without consuming: receive with a short visibility timeout (`PEEK_S`), then set each
  message's visibility back to 0 so it is visible again at once.
- redrive: claim the chosen messages (receive with `CLAIM_S` visibility), `send` each to its queue, THEN
  delete it by its fresh receipt handle. A send error releases what is left (visible again) and propagates;
  a killed redrive leaves claimed messages invisible for at most `CLAIM_S`, then they are back in the DLQ.
  So each message is in the DLQ, or on its queue (or, killed between send and delete, briefly in both).
- hold: nothing to move: the message simply stays; its reason shows `redrive_limit`.
- purge: receive and delete message by message (SQS allows one PurgeQueue per 60 s per queue).
- depth: ApproximateNumberOfMessages + NotVisible of every DLQ.

A FIFO DLQ hides a group's later messages while an earlier one is received; one peek of up to
`MAX_SCAN` messages therefore sees a group's first ten, and the rest after those are redriven.
IAM: sqs:GetQueueUrl, ReceiveMessage, ChangeMessageVisibility, DeleteMessage, GetQueueAttributes on the DLQs.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable

from coachup.deadletters import DeadLetter, matches

from .letters import letter_from_message
from .names import sqs_queues

__all__ = ["SqsDeadLetters", "PEEK_S", "CLAIM_S", "MAX_SCAN"]

PEEK_S = 5  # seconds a listed message stays hidden if the lister dies before releasing it
CLAIM_S = 30  # seconds a redrive holds a message between its receive and its delete
MAX_SCAN = 1000  # messages one listing reads at most per DLQ


class SqsDeadLetters:
    """`DeadLetterSource` over the DLQs of every queue in `settings` (see module doc)."""

    kind = "sqs"

    def __init__(self, settings, client=None) -> None:
        from .admin import sqs_client

        self._settings = settings
        self._client = client or sqs_client(settings)
        self._urls: dict[str, str | None] = {}

    # ---- helpers ----------------------------------------------------------------------------------------
    def _dlqs(self) -> list[tuple[str, str]]:
        """(logical queue, DLQ URL) of every DLQ that exists."""
        out = []
        for q in sqs_queues(self._settings):
            if q.dlq not in self._urls:
                try:
                    self._urls[q.dlq] = self._client.get_queue_url(QueueName=q.dlq)["QueueUrl"]
                except self._client.exceptions.QueueDoesNotExist:
                    self._urls[q.dlq] = None
            url = self._urls[q.dlq]
            if url:
                out.append((q.logical, url))
        return out

    def _receive(self, url: str, visibility: int) -> list[dict]:
        return self._client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])

    def _release(self, url: str, messages: Iterable[dict]) -> None:
        """Visible again now (ChangeMessageVisibility 0), in batches of ten."""
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(messages)
        ]
        for i in range(0, len(entries), 10):
            self._client.change_message_visibility_batch(QueueUrl=url, Entries=entries[i : i + 10])

    def _scan(
        self, url: str, visibility: int, limit: int = MAX_SCAN, until: Callable[[set], bool] = lambda _ids: False
    ) -> list[dict]:
        """Receive until the DLQ yields nothing new, `limit` messages, or `until(ids seen)`; not released."""
        seen: dict[str, dict] = {}
        while len(seen) < limit:
            batch = [m for m in self._receive(url, visibility) if m["MessageId"] not in seen]
            if not batch:
                break
            for m in batch:
                seen[m["MessageId"]] = m
            if until(set(seen)):
                break
        return list(seen.values())

    def _letter(self, queue: str, message: dict) -> DeadLetter:
        return letter_from_message(
            message,
            queue,
            max_receive_count=self._settings.sqs_max_receive_count,
            max_redrives=self._settings.max_redrives,
        )

    def _peek(self) -> builtins.list[DeadLetter]:
        letters = []
        for queue, url in self._dlqs():
            messages = self._scan(url, PEEK_S)
            try:
                letters += [
                    (int((m.get("Attributes") or {}).get("SentTimestamp") or 0), self._letter(queue, m))
                    for m in messages
                ]
            finally:
                self._release(url, messages)
        letters.sort(key=lambda pair: (pair[0], pair[1].id), reverse=True)
        return [letter for _, letter in letters]

    # ---- DeadLetterSource ------------------------------------------------------------------------------
    def list(
        self, *, task: str | None = None, error: str | None = None, limit: int | None = None
    ) -> builtins.list[DeadLetter]:
        out = [x for x in self._peek() if matches(x, task=task, error=error)]
        return out if limit is None else out[:limit]

    def get(self, letter_id: str) -> DeadLetter | None:
        return next((x for x in self._peek() if x.id == letter_id), None)

    def for_task(self, task_id: str) -> DeadLetter | None:
        """The newest letter of job `task_id` (a peek through every DLQ: ask only for a failed job)."""
        return next((x for x in self._peek() if x.task_id == task_id), None)

    def redrive(self, letters: Iterable[DeadLetter], send: Callable[[DeadLetter], None]) -> builtins.list[str]:
        wanted = {x.id: x for x in letters if x.task_id}  # an undecodable message is never sent blindly
        done: list[str] = []
        for queue, url in self._dlqs():
            mine = {i for i, x in wanted.items() if x.queue == queue}
            if not mine:
                continue
            claimed = self._scan(url, CLAIM_S, until=mine.issubset)
            by_id = {m["MessageId"]: m for m in claimed}
            left = dict(by_id)
            try:
                for letter_id in [i for i in wanted if i in mine and i in by_id]:
                    send(wanted[letter_id])  # on its queue first ...
                    self._client.delete_message(QueueUrl=url, ReceiptHandle=by_id[letter_id]["ReceiptHandle"])
                    left.pop(letter_id)  # ... then out of the DLQ
                    done.append(letter_id)
            finally:
                self._release(url, left.values())
        return done

    def hold(self, letter: DeadLetter, reason: str) -> None:
        """The message stays in its DLQ untouched; a letter over the redrive limit lists as `redrive_limit`."""

    def purge(self) -> int:
        n = 0
        for _queue, url in self._dlqs():
            while True:
                batch = self._receive(url, CLAIM_S)
                if not batch:
                    break
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
                self._client.delete_message_batch(QueueUrl=url, Entries=entries)
                n += len(batch)
        return n

    def depth(self) -> int:
        total = 0
        for _queue, url in self._dlqs():
            a = self._client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            total += int(a.get("ApproximateNumberOfMessages", 0)) + int(
                a.get("ApproximateNumberOfMessagesNotVisible", 0)
            )
        return total
