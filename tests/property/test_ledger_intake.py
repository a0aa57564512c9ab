"""Tenant routing of ledger webhooks (design two-way.md 3.2), as a property of ``LedgerIntake`` on
the unit tests' fakes: for any set of QuickBooks connections (their companies, keys, payments-back
setting, activity, directory entries) and any signed delivery naming any of their companies (or
none of them), each event is queued for exactly one connection, and only for the one the rule
names: the path connection for its own company; otherwise the directory's connection for that
company, if it is active, on the same ledger, is that company's, holds the key the delivery was
signed with, and has payments back on. Anything else is dropped, and the delivery is still 200."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from invoice_sync.ledgers.webhooks import sign
from tests.unit.test_ledger_events_handler import World, build, connection

KEYS = ["app-token-1", "app-token-2"]
TENANTS = [f"91303550000000{n:02d}" for n in range(4)]
IDS = ["acme", "beta", "gamma", "delta"]

connections = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from(TENANTS),
        "key": st.sampled_from([*KEYS, None]),  # None: no ledger-webhook secret
        "payments_back": st.booleans(),
        "active": st.booleans(),
        "ledger": st.sampled_from(["quickbooks", "quickbooks", "xero"]),
    }
)


def _company(
    tenant: int, key: str | None, *, on: bool = True, ledger: str = "quickbooks"
) -> dict[str, object]:
    return {"tenant": TENANTS[tenant], "key": key, "payments_back": on, "active": True, "ledger": ledger}


# The cases the rule exists for, tried on every run whatever is drawn: one app's key shared by two
# companies (routed), a company whose connection has a key of its own (dropped), one whose
# connection has payments back off or is on another ledger (dropped), and a company no one has.
@example(
    setup={
        "acme": _company(0, KEYS[0]),
        "beta": _company(1, KEYS[0]),
        "gamma": _company(2, KEYS[1]),
        "delta": _company(3, KEYS[0], on=False),
    },
    listed=["beta", "gamma", "delta"],
    odd={},
    path_key=KEYS[0],
    named=[TENANTS[0], TENANTS[1], TENANTS[2], TENANTS[3], "unknown"],
)
@example(
    setup={
        "acme": _company(0, KEYS[0], on=False),
        "beta": _company(1, KEYS[0], ledger="xero"),
        "gamma": _company(1, KEYS[0]),
        "delta": _company(2, None),
    },
    listed=["beta", "delta"],
    odd={TENANTS[3]: "gamma"},
    path_key=KEYS[0],
    named=[TENANTS[0], TENANTS[1], TENANTS[2], TENANTS[3]],
)
@given(
    setup=st.fixed_dictionaries(dict.fromkeys(IDS, connections)),
    # Mostly each connection's own company (connect writes those), sometimes a stale or odd entry.
    listed=st.lists(st.sampled_from(IDS), unique=True),
    odd=st.dictionaries(st.sampled_from(TENANTS), st.sampled_from([*IDS, "nobody"]), max_size=2),
    path_key=st.sampled_from(KEYS),
    named=st.lists(st.sampled_from([*TENANTS, "unknown"]), min_size=1, max_size=8),
)
def test_every_event_goes_to_the_connection_the_rule_names_or_nowhere(
    setup: dict[str, dict[str, object]],
    listed: list[str],
    odd: dict[str, str],
    path_key: str,
    named: list[str],
) -> None:
    setup = {k: dict(v) for k, v in setup.items()}  # examples are shared: leave them as they are
    setup["acme"].update(ledger="quickbooks", active=True, key=path_key)  # the path connection
    directory = {str(setup[i]["tenant"]): i for i in listed} | odd
    world = World()
    for connection_id, values in setup.items():
        world.connections[connection_id] = connection(
            connection_id,
            str(values["ledger"]),
            str(values["tenant"]),
            payments_back=values["payments_back"],
            active=values["active"],
        )
        if values["key"] is not None:
            world.keys[connection_id] = [str(values["key"])]
    world.tenants = {("quickbooks", tenant): owner for tenant, owner in directory.items()}
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": tenant,
                    "dataChangeEvent": {
                        "entities": [
                            {"name": "Payment", "id": str(n), "operation": "Create", "lastUpdated": None}
                        ]
                    },
                }
                for n, tenant in enumerate(named)
            ]
        }
    ).encode()

    result = build(world).accept("quickbooks", "acme", {"intuit-signature": sign(body, path_key)}, body)

    def owner(tenant: str) -> str | None:
        acme = setup["acme"]
        if tenant == acme["tenant"]:
            return "acme" if acme["payments_back"] else None
        chosen = directory.get(tenant)
        values = setup.get(chosen or "")
        if chosen == "acme" or values is None:
            return None
        if not (values["active"] and values["ledger"] == "quickbooks" and values["tenant"] == tenant):
            return None
        if values["key"] != path_key or not values["payments_back"]:
            return None
        return chosen

    expected = [(owner(tenant), str(n)) for n, tenant in enumerate(named)]
    queued = [(m.connection_id, m.object_id) for m in world.messages]
    assert queued == [(c, n) for c, n in expected if c is not None]
    assert result.events == len(queued)
    assert result.dropped == len(named) - len(queued)
