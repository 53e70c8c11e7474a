"""The dev inbox's messages: in memory, written by the SMTP server, read by the HTTP API."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from backend.devstack.mailhog_format import MessageJSON


@dataclass(frozen=True)
class StoredMessage:
    message: MessageJSON
    raw: bytes

    @property
    def id(self) -> str:
        return self.message["ID"]


class MessageStore:
    """Thread-safe, in-memory; written from the SMTP loop, read by the HTTP handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[StoredMessage] = []

    def add(self, stored: StoredMessage) -> None:
        with self._lock:
            self._messages.append(stored)

    def newest_first(self) -> list[StoredMessage]:
        with self._lock:
            return self._messages[::-1]

    def get(self, message_id: str) -> StoredMessage | None:
        with self._lock:
            return next((m for m in self._messages if m.id == message_id), None)

    def delete(self, message_id: str) -> bool:
        with self._lock:
            kept = [m for m in self._messages if m.id != message_id]
            deleted = len(kept) != len(self._messages)
            self._messages = kept
            return deleted

    def clear(self) -> None:
        with self._lock:
            self._messages = []
