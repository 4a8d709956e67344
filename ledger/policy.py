"""The operator's policy and its file: quarantine, caps, required data holders, time zone, retention,
jurisdictions; and ``ConfigError``, raised for any invalid setting.

``ConfigError`` lives here rather than beside the settings so that ``ledger.config``, which reads the
policy, imports it without the imports going in a circle.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.domain.rules import HOLDER_PATTERN
from ledger.jurisdictions import (
    DEFAULT_AGENT_CHANNELS,
    Jurisdiction,
    check_jurisdictions,
    parse_jurisdictions,
    value_for,
)


class ConfigError(Exception):
    """Raised when the policy file, database URL or key settings are invalid."""


@dataclass(frozen=True)
class Policy:
    """The operator's rules: quarantine length, per-identity cap, required data holders, time zone."""

    quarantine_days: int = 90
    max_numbers_per_identity: int = 5
    required_holders: tuple[str, ...] = ("crm", "billing", "voicemail")
    timezone: str = "UTC"
    # Subscribers whose tenures all ended this long ago are listed as due for erasure.
    erasure_retention_days: int = 180
    # Real-name records are kept this long after service ends (MIIT Order 25); earlier erasures are held.
    identity_retention_days: int = 730
    # Copies of an erased key (table files, WAL, backups) stop opening at the end of its erasure epoch.
    erasure_epoch_seconds: int = 86400
    # How far in the future a caller's occurred_at may be (clock skew between systems).
    max_clock_skew_seconds: int = 300
    # Checks answer UNAVAILABLE (READ_MODEL_BEHIND) rather than from a read model that has not applied an
    # event the ledger has held for longer than this; 0 turns the bound off.
    max_check_lag_seconds: int = 0
    # The server signs a tree head this often when the log has grown (0: only on demand). Events appended
    # after the last published head are covered by no signature until the next one.
    signed_head_interval_seconds: int = 60
    # Per country calling code (``[jurisdictions."+1"] quarantine_days = 45``); a number takes the longest
    # calling code that begins it.
    jurisdictions: tuple[Jurisdiction, ...] = ()
    # Channels that need an agent_id on VerifyIdentity, ActivateSim and SwapSim; others (app, web) do not.
    agent_channels: tuple[str, ...] = DEFAULT_AGENT_CHANNELS

    def __post_init__(self) -> None:
        if not 0 <= self.quarantine_days <= 3650:
            raise ConfigError("quarantine_days must be between 0 and 3650")
        if not 1 <= self.max_numbers_per_identity <= 1000:
            raise ConfigError("max_numbers_per_identity must be between 1 and 1000")
        if len(set(self.required_holders)) != len(self.required_holders):
            raise ConfigError("required_holders has duplicates")
        for holder in self.required_holders:
            if not HOLDER_PATTERN.match(holder):
                raise ConfigError(f"required holder {holder!r} must match {HOLDER_PATTERN.pattern}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ConfigError(f"unknown timezone {self.timezone!r}") from e
        if not 0 <= self.erasure_retention_days <= 36500:
            raise ConfigError("erasure_retention_days must be between 0 and 36500")
        if not 0 <= self.identity_retention_days <= 36500:
            raise ConfigError("identity_retention_days must be between 0 and 36500")
        if not 1 <= self.erasure_epoch_seconds <= 31 * 86400:
            raise ConfigError("erasure_epoch_seconds must be between 1 and 2678400 (31 days)")
        if not 0 <= self.max_clock_skew_seconds <= 86400:
            raise ConfigError("max_clock_skew_seconds must be between 0 and 86400")
        if not 0 <= self.max_check_lag_seconds <= 86400:
            raise ConfigError("max_check_lag_seconds must be between 0 and 86400 (0: no bound)")
        if not 0 <= self.signed_head_interval_seconds <= 86400:
            raise ConfigError("signed_head_interval_seconds must be between 0 and 86400 (0: on demand only)")
        try:
            check_jurisdictions(self.jurisdictions, self.quarantine_days)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def quarantine_days_for(self, number: str) -> int:
        """The quarantine of the number's jurisdiction, else the policy's ``quarantine_days``."""
        return value_for(self.jurisdictions, number, "quarantine_days", self.quarantine_days)

    def max_numbers_for(self, number: str) -> int:
        """The per-identity cap of the number's jurisdiction, else the policy's ``max_numbers_per_identity``."""
        return value_for(self.jurisdictions, number, "max_numbers_per_identity", self.max_numbers_per_identity)

    @property
    def zone(self) -> ZoneInfo:
        """The business time zone in which check dates are read."""
        return ZoneInfo(self.timezone)

    @classmethod
    def from_toml(cls, path: Path) -> Policy:
        """Read a policy file; keys not given keep their defaults, unknown keys are refused."""
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read policy file {path}: {e}") from e
        policy = data.get("policy", data)
        if "policy" in data and "jurisdictions" in data:  # [jurisdictions."+1"] beside a [policy] table
            policy = {**policy, "jurisdictions": data["jurisdictions"]}
        return cls.from_mapping(policy)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Policy:
        """Build a policy from a mapping, checking names and types."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown policy keys: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("required_holders", "agent_channels"):
                if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
                    raise ConfigError(f"{key} must be a list of strings")
                values[key] = tuple(value)
            elif key == "jurisdictions":
                try:
                    values[key] = parse_jurisdictions(value)
                except ValueError as e:
                    raise ConfigError(str(e)) from None
            elif key == "timezone":
                if not isinstance(value, str):
                    raise ConfigError("timezone must be a string")
                values[key] = value
            else:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ConfigError(f"{key} must be an integer")
                values[key] = value
        return cls(**values)
