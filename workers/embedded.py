"""The embedded broker: kombu's filesystem transport, with publishing and taking made atomic.

kombu's filesystem channel creates the message file under its final name and then writes into it, while a
consumer moves away and reads any file with that name. A consumer polling in between reads an empty file,
deletes it and dies on the JSON error ("Unrecoverable error: JSONDecodeError"): the message is lost and the
worker stops consuming. Here a message is written under a hidden staging name and renamed into place once
complete (a rename within one directory tree is atomic), and a consumer takes a file by renaming it into a
hidden folder on the same filesystem, so exactly one consumer gets each message, whole.

The exchange tables have the same flaw (a process declaring a queue while another creates the table reads
it empty and fails to start); they are created, read and rewritten under one lock here.

Celery uses this transport through `broker_transport` (see `celeryconfig`); the URL stays `filesystem://`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from collections import deque
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
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
            with open(temp, "xb") as f:  # buffered: the whole payload is written, however large
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temp, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise ChannelError(f"Cannot add message {name!r} to the broker folder") from exc

    def _get(self, queue):
        folder = self.data_folder_in
        taken = self._folder(folder, TAKEN)
        pending = self._listed(queue)
        while pending:
            filename = pending.popleft()
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

    def _listed(self, queue) -> deque:
        """The queue's message files, oldest first, from one listing of the folder kept until used up.

        kombu lists and sorts the whole folder for every message it takes, so draining N messages costs
        N listings of up to N names. Here one listing serves every queue until that queue's share is
        used up; names another consumer took meanwhile fail their rename and are skipped, and messages
        published after the listing are newer than everything in it, so order is kept.
        """
        cached = getattr(self, "_pending", None)
        if cached is None:
            cached = self._pending = {}
        pending = cached.get(queue)
        if not pending:
            cached.clear()
            for filename in sorted(os.listdir(self.data_folder_in)):
                name, dot, rest = filename.partition(".")
                if dot and rest.endswith(".msg") and name:
                    cached.setdefault(rest[:-4], deque()).append(filename)
            pending = cached.get(queue)
        return pending or deque()

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
        log.error(
            "broker_message_unreadable",
            extra={"event": "broker_message_unreadable", "file": f"{UNREADABLE}/{filename}"},
        )

    # exchange tables (`control/<exchange>.exchange`): kombu creates the file and then locks and writes it,
    # so a process declaring the same queue at that moment reads an empty table and fails to start. Here
    # the file is created, read and rewritten under one exclusive lock, and an empty file is an empty table.

    def get_table(self, exchange):
        file = self._exchange_file(exchange)
        try:
            fd = os.open(file, os.O_RDONLY)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return [filesystem.exchange_queue_t(*q) for q in _table(fd)]
        finally:
            os.close(fd)  # releases the lock

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._edit_table(exchange, lambda queues: queues if entry in queues else [entry, *queues])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._edit_table(exchange, lambda queues: [q for q in queues if q != entry], create=False)

    def _edit_table(self, exchange, change, *, create: bool = True) -> None:
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        try:
            fd = os.open(file, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            queues = [filesystem.exchange_queue_t(*q) for q in _table(fd)]
            changed = change(queues)
            if changed != queues:
                data = str_to_bytes(dumps(changed))
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                with open(fd, "wb", closefd=False) as f:  # buffered: every byte of the table is written
                    f.write(data)
        finally:
            os.close(fd)


def _table(fd: int) -> list:
    """The JSON list in an exchange file (empty: a file just created), read from the start."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    raw = b"".join(chunks).strip()
    return loads(bytes_to_str(raw)) if raw else []


class Transport(filesystem.Transport):
    Channel = Channel
