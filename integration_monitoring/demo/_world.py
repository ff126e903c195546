"""The simulated platform: tenants, integrations, and what is about to go wrong with them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AdapterProfile:
    entities: tuple[str, ...]
    latency_ms: float  # median API latency
    page_size: int
    records_per_sync: int  # typical changed records per scheduled sync


ADAPTERS: dict[str, AdapterProfile] = {
    "salesforce": AdapterProfile(("contact", "account", "opportunity"), 420, 200, 450),
    "hubspot": AdapterProfile(("contact", "company", "deal"), 180, 100, 220),
    "pipedrive": AdapterProfile(("person", "organization", "deal"), 250, 100, 120),
    "zendesk": AdapterProfile(("ticket", "user"), 300, 100, 160),
}

#: Things that happen to single integrations, so every panel and alert has a story.
QUIRKS = ("stale", "expiring", "slow", "rate_limited", "flaky", "partial", "paused_later")


@dataclass
class Integration:
    tenant_id: str
    integration_id: str
    adapter_type: str
    entities: tuple[str, ...]
    interval_s: int
    scale: float  # multiplies records per sync
    paused: bool = False
    quirks: set[str] = field(default_factory=set)

    @property
    def profile(self) -> AdapterProfile:
        return ADAPTERS[self.adapter_type]

    @property
    def labels(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "integration_id": self.integration_id,
                "adapter_type": self.adapter_type}


@dataclass
class World:
    tenants: list[str]
    integrations: list[Integration]

    def with_quirk(self, quirk: str) -> list[Integration]:
        return [i for i in self.integrations if quirk in i.quirks]


def build_world(seed: int, tenants: int, integrations: int) -> World:
    """A deterministic platform for a seed: same ids, schedules and quirks every time."""
    rng = random.Random(seed)
    tenant_ids = [f"tenant-{101 + n}" for n in range(tenants)]
    adapters = list(ADAPTERS)
    made: list[Integration] = []
    for n in range(integrations):
        adapter = adapters[n % len(adapters)] if n < len(adapters) else rng.choice(adapters)
        profile = ADAPTERS[adapter]
        entity_count = rng.randint(1, len(profile.entities))
        made.append(Integration(
            tenant_id=tenant_ids[n % tenants],
            integration_id=f"{adapter}-connection-{n + 1}",
            adapter_type=adapter,
            entities=tuple(rng.sample(profile.entities, entity_count)),
            interval_s=rng.choice((300, 600, 900, 900, 1800, 3600)),
            scale=rng.lognormvariate(0, 0.6),
        ))
    # Paused from the start: about one in twelve (at least one).
    for integration in rng.sample(made, max(1, len(made) // 12)):
        integration.paused = True
    running = [i for i in made if not i.paused]
    preferred = {"rate_limited": "hubspot", "slow": "salesforce", "expiring": "salesforce"}
    for quirk in QUIRKS:
        wanted = preferred.get(quirk)
        candidates = [i for i in running if not i.quirks and (
            wanted is None or i.adapter_type == wanted)] or [i for i in running if not i.quirks]
        if candidates:
            rng.choice(candidates).quirks.add(quirk)
    for integration in running:
        if not integration.quirks and rng.random() < 0.15:
            integration.quirks.add(rng.choice(("flaky", "partial")))
    return World(tenant_ids, made)
