"""Making, listing and ending silences, for the admin API: each change is kept in the relay's
store (the outbox's), is an audit event, and in Azure is mirrored by an alert processing rule.

    silencer = Silencer(deliverer, processing_rules)
    silencer.create(body, by="ops@example.com", tenants=None)  # SilenceError, NotYours
    silencer.listed(tenants=None)          # newest first, each with state, window, holding
    silencer.expire(silence_id, by=..., tenants=None)          # None: none the caller may see

`tenants` is the caller's: None for an admin, else the tenants a reader may act on. A reader's
silence must name only their tenants (an Equals matcher on tenantId), and a reader sees and
ends only such silences. Only an admin's silences become alert processing rules in Azure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

from ..telemetry import get_logger
from ._delivery import Deliverer
from ._redelivery import Redeliverer
from ._silences import STATES, Silence, tenants_named

log = get_logger("alert-relay")


class NotYours(PermissionError):
    """A reader tried to silence, or end a silence, beyond their tenants."""


class ProcessingRuleWriter(Protocol):
    """Where silences are mirrored in Azure (alert processing rules)."""

    def put(self, silence: Silence) -> str: ...

    def delete(self, silence_id: str) -> bool: ...


class Silencer:
    def __init__(self, deliverer: Deliverer,
                 processing_rules: ProcessingRuleWriter | None = None) -> None:
        self.deliverer = deliverer
        self.processing_rules = processing_rules

    @property
    def _outbox(self) -> Any:
        if self.deliverer.outbox is None:
            raise RuntimeError("silences need the relay's outbox, and this relay has none")
        return self.deliverer.outbox

    def create(self, body: Any, *, by: str, tenants: Iterable[str] | None,
               source: str = "user") -> dict[str, Any]:
        now = self.deliverer.now()
        silence = Silence.parse(body, created_by=by, now=now, source=source)
        _check_tenants(silence, tenants)
        saved = self._outbox.save_silence(silence)
        if saved is None:  # a fresh uuid taken: only a broken store says so
            raise RuntimeError(f"silence {silence.id} exists already")
        self._event("alert.silence_created", saved, by=by, **_what(saved))
        # Azure matches dimensions as text anywhere in the alert ("tenant-1" holds tenant-10
        # too, whatever the rule), so only an admin's silence is mirrored there: a reader's,
        # or the app's for a paused integration, is held by the relay alone.
        azure = self._mirror(saved) if tenants is None and source == "user" else {}
        return {**self._describe(saved, now, {}), **azure}

    def listed(self, *, tenants: Iterable[str] | None,
               state: str | None = None) -> list[dict[str, Any]]:
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        now = self.deliverer.now()
        holding: dict[str, int] = {}
        for entry in self._outbox.entries():
            if entry.held_by:
                holding[entry.held_by] = holding.get(entry.held_by, 0) + 1
        shown = [s for s in self._outbox.silences() if _may(s, tenants)
                 and (state is None or s.state(now) == state)]
        shown.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return [self._describe(s, now, holding) for s in shown]

    def expire(self, silence_id: str, *, by: str,
               tenants: Iterable[str] | None) -> dict[str, Any] | None:
        """End a silence now; what it held and no other silence holds is sent at once."""
        for _ in range(3):  # another writer may change it between our read and write
            found = next((s for s in self._outbox.silences() if s.id == silence_id), None)
            if found is None or not _may(found, tenants):
                return None  # a reader does not learn of other tenants' silences
            now = self.deliverer.now()
            if found.state(now) == "expired":
                self._release(found, now)  # again: an earlier release may have failed
                return self._describe(found, now, {})
            saved = self._outbox.save_silence(found.expire(now))
            if saved is None:
                continue
            self._event("alert.silence_expired", saved, by=by, **_what(saved))
            azure = self._unmirror(saved)
            self._release(saved, now)
            return {**self._describe(saved, now, {}), **azure}
        raise RuntimeError(f"silence {silence_id} kept changing while it was being expired")

    # -- around the store -------------------------------------------------------------------

    def _release(self, silence: Silence, now: dt.datetime) -> None:
        """Bring its held entries due now and run the redelivery over them. A failure here
        changes nothing for good: the timer looks at held entries every few minutes."""
        try:
            for entry in self._outbox.entries():
                if entry.held_by == silence.id and entry.next_attempt_at > now:
                    entry.next_attempt_at = now
                    self._outbox.save(entry)
            Redeliverer(self.deliverer).run(now)
        except Exception as exc:
            self._event("alert.outbox_failed", silence, level="warn",
                        error=f"{type(exc).__name__}: {exc}",
                        reason="could not release what the silence held; the timer will")

    def _mirror(self, silence: Silence) -> dict[str, Any]:
        if self.processing_rules is None:
            return {}
        try:
            return {"processingRule": self.processing_rules.put(silence)}
        except Exception as exc:  # the relay holds notifications anyway; e-mail may not stop
            error = f"{type(exc).__name__}: {exc}"
            self._event("alert.processing_rule_failed", silence, action="create", error=error,
                        level="error")
            return {"processingRuleError": error}

    def _unmirror(self, silence: Silence) -> dict[str, Any]:
        if self.processing_rules is None:
            return {}
        try:
            self.processing_rules.delete(silence.id)
            return {}
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._event("alert.processing_rule_failed", silence, action="delete", error=error,
                        level="error")
            return {"processingRuleError": error}

    @staticmethod
    def _describe(silence: Silence, now: dt.datetime,
                  holding: dict[str, int]) -> dict[str, Any]:
        return {**silence.describe(now), "holding": holding.get(silence.id, 0)}

    @staticmethod
    def _event(operation: str, silence: Silence, level: str = "info",
               **metadata: Any) -> None:
        named = tenants_named(silence)
        tenant = next(iter(named)) if named and len(named) == 1 else None
        log.log(level, operation, tenant, None, {"silenceId": silence.id, **metadata})


def _what(silence: Silence) -> dict[str, Any]:
    """What an audit event says of a silence."""
    record = silence.record()
    return {key: record[key] for key in ("matchers", "startsAt", "endsAt", "timeZone",
                                         "weekly", "comment", "createdBy", "expiredAt",
                                         "source")}


def _check_tenants(silence: Silence, tenants: Iterable[str] | None) -> None:
    if tenants is None:
        return
    allowed = set(tenants)
    named = tenants_named(silence)
    if not named:  # none, or Equals matchers that no one tenant satisfies
        raise NotYours("a tenant reader's silence needs a tenantId matcher with operator "
                       f"Equals and only their tenants ({', '.join(sorted(allowed))})")
    if not named <= allowed:
        raise NotYours(f"you may not silence tenant(s) {', '.join(sorted(named - allowed))}")


def _may(silence: Silence, tenants: Iterable[str] | None) -> bool:
    if tenants is None:
        return True
    named = tenants_named(silence)
    return bool(named) and named <= set(tenants)

