"""OAuth2 token set of one ledger connection, as kept in Secrets Manager."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, SecretStr


class TokenSet(BaseModel):
    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr
    access_token: SecretStr | None = None
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    refreshed_at: datetime | None = None

    def access_valid(self, now: datetime, margin: timedelta = timedelta(seconds=120)) -> bool:
        return (
            self.access_token is not None
            and self.access_expires_at is not None
            and self.access_expires_at - margin > now
        )

    def to_secret_json(self) -> str:
        """The one place secret values are written out, and only into Secrets Manager."""
        data = self.model_dump(mode="json")
        for name in ("client_secret", "refresh_token", "access_token"):
            value = getattr(self, name)
            data[name] = value.get_secret_value() if value is not None else None
        return json.dumps(data)


def expires_in(now: datetime, seconds: int | float | None) -> datetime | None:
    return now + timedelta(seconds=float(seconds)) if seconds is not None else None


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
