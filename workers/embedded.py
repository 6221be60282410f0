"""The embedded broker: kombu's filesystem transport, with publishing and taking made atomic.

kombu's filesystem channel creates the message file under its final name and then writes into it, while a
consumer moves away and reads any file with that name. A consumer polling in between reads an empty file,
deletes it and dies on the JSON error ("Unrecoverable error: JSONDecodeError"): the message is lost and the
worker stops consuming. Here a message is written under a hidden staging name and renamed into place once
complete (a rename within one directory tree is atomic), and a consumer takes a file by renaming it into a
hidden folder on the same filesystem, so exactly one consumer gets each message, whole.

Celery uses this transport through `broker_transport` (see `celeryconfig`); the URL stays `filesystem://`.
"""

from __future__ import annotations

import logging
import os
import uuid
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

__all__ = ["Channel", "Transport", "STAGING", "TAKEN", "UNREADABLE"]

log = logging.getLogger("coachup.worker")

STAGING = ".staging"  # messages being written; never listed as a queue's message
TAKEN = ".taken"  # messages a consumer has claimed and is reading
UNREADABLE = "unreadable"  # files that were not a JSON message, kept for an operator instead of crashing


def _message_name(queue: str) -> str:
    # kombu's own naming (`<ms>_<uuid>.<queue>.msg`): the folder sorts oldest first
    return f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    """Filesystem channel whose put and get cannot observe a half-written message."""

    _made: frozenset = frozenset()

    def _folder(self, *parts: str) -> str:
        path = os.path.join(*parts)
        if path not in self._made:
            os.makedirs(path, exist_ok=True)
            self._made = self._made | {path}
        return path

    def _put(self, queue, payload, **kwargs):
        name = _message_name(queue)
        staging = self._folder(self.data_folder_out, STAGING)
        temp = os.path.join(staging, name)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, str_to_bytes(dumps(payload)))
            finally:
                os.close(fd)
            os.replace(temp, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise ChannelError(f"Cannot add message {name!r} to the broker folder") from exc

    def _get(self, queue):
        suffix = f"{queue}.msg"
        folder = self.data_folder_in
        taken = self._folder(folder, TAKEN)
        for filename in sorted(os.listdir(folder)):
            if filename.partition(".")[2] != suffix:
                continue
            path = os.path.join(taken, filename)
            try:
                os.rename(os.path.join(folder, filename), path)  # atomic: one consumer wins
            except FileNotFoundError:
                continue  # another consumer took it
            try:
                with open(path, "rb") as f:
                    payload = f.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read message {filename!r}") from exc
            try:
                message = loads(bytes_to_str(payload))
            except ValueError:
                self._set_aside(path, filename)
                continue
            self._dispose(path, filename)
            return message
        raise Empty()

    def _dispose(self, path: str, filename: str) -> None:
        if self.store_processed:
            os.makedirs(self.processed_folder, exist_ok=True)
            os.replace(path, os.path.join(self.processed_folder, filename))
        else:
            os.unlink(path)

    def _set_aside(self, path: str, filename: str) -> None:
        """Keep a file that is not a message (written by something else) and go on consuming."""
        target = os.path.join(self.data_folder_in, UNREADABLE)
        os.makedirs(target, exist_ok=True)
        os.replace(path, os.path.join(target, filename))
        log.error("broker_message_unreadable", extra={"event": "broker_message_unreadable",
                                                      "file": f"{UNREADABLE}/{filename}"})


class Transport(filesystem.Transport):
    Channel = Channel
