"""Warm-path cost of webhook intake, AWS calls stubbed: signature check, parsing, snapshot build.

Runs IntakeService.accept on the largest fixture (the paid invoice with payments) N times with
in-memory stand-ins for S3, SQS, DynamoDB and Secrets Manager, beside a bare ``json.loads`` of the
same body in the same run (the floor any webhook handler pays), and prints per-webhook times.

    .venv/bin/python bench/intake_warm.py [--iterations 5000]

Last line: ``intake_warm_per_webhook=<ms> ms``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pydantic import SecretStr

from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import SyncMessage
from invoice_sync.sources.stripe import signature_header
from invoice_sync.sync.intake import IntakeService

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "events" / "stripe" / "a2_invoice.paid.current.json"
SECRET = "whsec_bench"  # noqa: S105 - a benchmark value


class _Stubs:
    """Every port of the intake in memory: nothing is seen twice, everything is accepted."""

    def __init__(self) -> None:
        self.connection_value = Connection(connection_id="bench", tenant_id="1")
        self.sent = 0

    def connection(self, connection_id: str) -> Connection | None:
        return self.connection_value

    def webhook_secrets(self, connection_id: str) -> list[SecretStr]:
        return [SecretStr(SECRET)]

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        return None

    def send(self, message: SyncMessage) -> None:
        message.model_dump_json()  # as the queue store serialises the snapshot
        self.sent += 1


def stubbed_service(now: int) -> IntakeService:
    """The intake use case with every AWS call stubbed, its clock fixed at ``now``."""
    stubs = _Stubs()
    return IntakeService(
        connections=stubs,
        secrets=stubs,
        archive=stubs,
        queue=stubs,
        max_bytes=262_144,
        tolerance_seconds=300,
        clock=lambda: now,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    body = FIXTURE.read_bytes()
    now = int(time.time())
    headers = {"stripe-signature": signature_header(body, [SECRET], now)}
    service = stubbed_service(now)
    for _ in range(200):  # warm up
        service.accept("stripe", "bench", headers, body)

    start = time.perf_counter()
    for _ in range(args.iterations):
        json.loads(body)
    floor = (time.perf_counter() - start) / args.iterations

    start = time.perf_counter()
    for _ in range(args.iterations):
        service.accept("stripe", "bench", headers, body)
    per_webhook = (time.perf_counter() - start) / args.iterations

    print(f"body_bytes={len(body)} bytes")
    print(f"json_loads_floor={floor * 1000:.3f} ms")
    print(f"ratio_to_json_loads={per_webhook / floor:.1f} x")
    print(f"intake_warm_per_webhook={per_webhook * 1000:.3f} ms")


if __name__ == "__main__":
    main()
