"""What importing a mapping file changes: rules added, changed and removed per section, and settings.

Pure: the connection's current mapping and the file's, in; the writes to make, out. A file is the
whole state, so rules it leaves out are removed; customer rules push learned are kept unless the
file names that customer (then the file's rule replaces the learned one).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from invoice_sync.mapping.file import SECTIONS, MappingDocument, Settings
from invoice_sync.models.mapping import MappingRule, RuleKind

SECTION_OF = {kind: section for section, kind in SECTIONS.items()}


@dataclass(frozen=True)
class Plan:
    puts: tuple[MappingRule, ...]
    deletes: tuple[MappingRule, ...]
    settings: Settings
    # Per section: the source values added, changed and removed.
    sections: dict[str, dict[str, list[str]]]
    setting_changes: dict[str, tuple[Any, Any]]  # name -> (before, after)
    kept_learned: int = 0

    @property
    def empty(self) -> bool:
        return not (self.puts or self.deletes or self.setting_changes)

    def totals(self) -> dict[str, int]:
        totals = {
            change: sum(len(section[change]) for section in self.sections.values())
            for change in ("added", "changed", "removed")
        }
        return {**totals, "settings": len(self.setting_changes)}

    def as_json(self) -> dict[str, Any]:
        return {
            "rules": self.sections,
            "settings": {
                name: {"before": _plain(before), "after": _plain(after)}
                for name, (before, after) in self.setting_changes.items()
            },
            "kept_learned_customers": self.kept_learned,
            "totals": self.totals(),
        }


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def _learned(rule: MappingRule) -> bool:
    return rule.kind is RuleKind.CUSTOMER and rule.learned is not False


def plan(current: MappingDocument, wanted: MappingDocument) -> Plan:
    now = {(rule.kind, rule.source_value): rule for rule in current.rules}
    new = {(rule.kind, rule.source_value): rule for rule in wanted.rules}
    sections: dict[str, dict[str, list[str]]] = {
        section: {"added": [], "changed": [], "removed": []} for section in SECTIONS
    }
    puts: list[MappingRule] = []
    deletes: list[MappingRule] = []
    kept = 0
    for key, rule in new.items():
        before = now.get(key)
        if before == rule:
            continue
        sections[SECTION_OF[rule.kind]]["added" if before is None else "changed"].append(rule.source_value)
        puts.append(rule)
    for key, rule in now.items():
        if key in new:
            continue
        if _learned(rule):
            kept += 1
            continue
        sections[SECTION_OF[rule.kind]]["removed"].append(rule.source_value)
        deletes.append(rule)
    for changes in sections.values():
        for values in changes.values():
            values.sort()
    setting_changes = {
        f.name: (getattr(current.settings, f.name), getattr(wanted.settings, f.name))
        for f in fields(Settings)
        if getattr(current.settings, f.name) != getattr(wanted.settings, f.name)
    }
    return Plan(
        puts=tuple(puts),
        deletes=tuple(deletes),
        settings=wanted.settings,
        sections=sections,
        setting_changes=setting_changes,
        kept_learned=kept,
    )
