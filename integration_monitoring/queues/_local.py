"""An in-process queue with Service Bus semantics, for the demo and for tests."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    body: Any
    message_id: int
    delivery_count: int = 0
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


class LocalQueue:
    """Peek-lock delivery with a max delivery count and a dead-letter subqueue.

    Like Service Bus: a received message is locked; `complete` removes it, `abandon`
    makes it available again and dead-letters it once its delivery count reaches
    `max_delivery_count`, `dead_letter` moves it at once. Scheduled messages become active
    at their time (on whatever clock the caller passes in).
    """

    def __init__(self, name: str, max_delivery_count: int = 5) -> None:
        self.name = name
        self.max_delivery_count = max_delivery_count
        self._active: deque[Message] = deque()
        self._scheduled: list[tuple[int, int, Message]] = []
        self._locked: dict[int, Message] = {}
        self.dead_letters: list[Message] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, body: Any, *, scheduled_at_ns: int | None = None,
             **properties: Any) -> Message:
        message = Message(body, next(self._ids), properties=properties)
        with self._lock:
            if scheduled_at_ns is None:
                self._active.append(message)
            else:
                heapq.heappush(self._scheduled, (scheduled_at_ns, message.message_id, message))
        return message

    def receive(self, now_ns: int) -> Message | None:
        with self._lock:
            self._release_scheduled(now_ns)
            if not self._active:
                return None
            message = self._active.popleft()
            message.delivery_count += 1
            self._locked[message.message_id] = message
            return message

    def complete(self, message: Message) -> None:
        with self._lock:
            self._locked.pop(message.message_id, None)

    def abandon(self, message: Message) -> bool:
        """Release the lock; True if the message was dead-lettered (delivery count reached)."""
        if message.delivery_count >= self.max_delivery_count:
            self.dead_letter(message, "MaxDeliveryCountExceeded",
                             f"delivered {message.delivery_count} times")
            return True
        with self._lock:
            self._locked.pop(message.message_id, None)
            self._active.append(message)
        return False

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        with self._lock:
            self._locked.pop(message.message_id, None)
            message.dead_letter_reason = reason
            message.dead_letter_description = description
            self.dead_letters.append(message)

    def _release_scheduled(self, now_ns: int) -> None:
        while self._scheduled and self._scheduled[0][0] <= now_ns:
            self._active.append(heapq.heappop(self._scheduled)[2])

    @property
    def active_count(self) -> int:
        """Messages waiting or locked, as Service Bus counts `ActiveMessageCount`."""
        with self._lock:
            return len(self._active) + len(self._locked)

    @property
    def scheduled_count(self) -> int:
        with self._lock:
            return len(self._scheduled)

    @property
    def dead_letter_count(self) -> int:
        with self._lock:
            return len(self.dead_letters)


_registry: dict[str, LocalQueue] = {}
_registry_lock = threading.Lock()


def register_local_queue(queue: LocalQueue) -> LocalQueue:
    """Make a local queue visible to the depth sampler (the demo registers its queues)."""
    with _registry_lock:
        _registry[queue.name] = queue
    return queue


def local_queues() -> dict[str, LocalQueue]:
    with _registry_lock:
        return dict(_registry)
