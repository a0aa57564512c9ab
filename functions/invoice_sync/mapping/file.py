"""Mapping files: one connection's whole mapping as a YAML or CSV document, and back.

Pure: text in, ``MappingDocument`` out (or one ``MappingFileError`` naming the line and field),
and a document out as text. ``docs/cli-mappings.md`` is the user's description of both forms.

A document is state, not operations: importing it makes the connection's settings and rules
equal to it (except learned customer rules the file does not mention, which stay).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, get_args

import yaml

from invoice_sync.models.mapping import Connection, CustomerPolicy, LedgerKind, MappingRule, RuleKind

FileFormat = Literal["yaml", "csv"]

# YAML sections, in the order they are written, and the rule kind each holds.
SECTIONS: dict[str, RuleKind] = {
    "customers": RuleKind.CUSTOMER,
    "products": RuleKind.PRODUCT,
    "tax_rates": RuleKind.TAX_RATE,
    "currencies": RuleKind.CURRENCY,
}
KIND_ORDER = {kind: index for index, kind in enumerate(SECTIONS.values())}
RULE_FIELDS = ("source_value", "ledger_id", "ledger_account", "ledger_name", "source_name", "learned")
CSV_COLUMNS = ("kind", *RULE_FIELDS)
CSV_REQUIRED = ("kind", "source_value", "ledger_id")
MAX_VALUE = 512  # a rule's source value is part of a DynamoDB sort key (1,024 bytes at most)


class ItemPolicy(StrEnum):
    """Which side is the master for items. Only the source's products mapped onto existing ledger
    items is supported: creating items in the ledger is not (yet)."""

    REQUIRE_MAPPING = "require_mapping"


@dataclass(frozen=True)
class Settings:
    """Connection-level settings a mapping file carries (see ``Connection`` for each one's use)."""

    customer_policy: CustomerPolicy = CustomerPolicy.AUTO_CREATE
    item_policy: ItemPolicy = ItemPolicy.REQUIRE_MAPPING
    no_tax_code: str = "NON"
    default_item_id: str | None = None
    default_account: str | None = None
    payment_account: str | None = None
    refund_item_id: str | None = None
    refund_account: str | None = None
    refund_from_account: str | None = None
    rounding_account: str | None = None  # reserved: push adds no rounding line yet
    # Payments back (issue 7): ledger payments mirrored to Stripe, none made before the start.
    payments_back: bool = False
    payments_back_since: datetime | None = None
    # Payouts as bank deposits (issue 7): see ``Connection``.
    payout_deposits: bool = False
    payout_bank_account: str | None = None
    payout_fee_account: str | None = None
    payout_adjustment_account: str | None = None
    payout_unmatched_account: str | None = None
    payout_contact_id: str | None = None

    @classmethod
    def of(cls, connection: Connection) -> Settings:
        names = {f.name for f in fields(cls)} - {"item_policy"}
        return cls(**{name: getattr(connection, name) for name in names})

    def applied_to(self, connection: Connection) -> Connection:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "item_policy"}
        return connection.model_copy(update=values)


REQUIRED_SETTINGS = ("customer_policy", "no_tax_code")
OPTIONAL_SETTINGS = tuple(f.name for f in fields(Settings) if f.name not in REQUIRED_SETTINGS)
HEADER_SETTINGS = ("connection", "ledger")  # who the file is for; checked against the connection


def rule_order(rule: MappingRule) -> tuple[int, str]:
    return KIND_ORDER[rule.kind], rule.source_value


@dataclass(frozen=True)
class MappingDocument:
    settings: Settings = field(default_factory=Settings)
    rules: tuple[MappingRule, ...] = ()
    connection: str | None = None
    ledger: LedgerKind | None = None
    # Where each rule was read, for messages about it after parsing; not part of the content.
    lines: dict[tuple[RuleKind, str], int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=rule_order)))

    @classmethod
    def of(cls, connection: Connection, rules: Iterable[MappingRule]) -> MappingDocument:
        return cls(
            settings=Settings.of(connection),
            rules=tuple(rules),
            connection=connection.connection_id,
            ledger=connection.ledger,
        )

    def counts(self) -> dict[str, int]:
        return {section: sum(1 for r in self.rules if r.kind is kind) for section, kind in SECTIONS.items()}

    def without_learned(self) -> MappingDocument:
        """The operator's own rules: customers push found or created itself are left out."""
        return replace(self, rules=tuple(r for r in self.rules if not _learned(r)))


class MappingFileError(ValueError):
    """What is wrong with a mapping file, in one line: where (file, line, field) and what."""

    def __init__(self, path: str, problems: list[tuple[int | None, str | None, str]]) -> None:
        self.path = path
        self.problems = problems
        line, name, message = problems[0]
        where = f"{path}:{line}" if line else path
        text = f"{where}: {name}: {message}" if name else f"{where}: {message}"
        if len(problems) > 1:
            text += f" (and {len(problems) - 1} more)"
        super().__init__(text)


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[tuple[int | None, str | None, str]] = []

    def add(self, line: int | None, name: str | None, message: str) -> None:
        self.found.append((line, name, message))

    def raise_any(self) -> None:
        if self.found:
            raise MappingFileError(self.path, sorted(self.found, key=lambda p: p[0] or 0))


# --- one place that checks values, whichever form they came in ----------------------------------


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _moment(value: str | None) -> datetime | None:
    """A date (midnight UTC) or an ISO 8601 time with its zone, in UTC; None when it is neither."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if len(value) == 10:  # a bare date
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


class _Builder:
    """Collects settings and rules from either form, checking each value as it arrives."""

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems
        self.settings: dict[str, Any] = {}
        self.setting_lines: dict[str, int] = {}
        self.header: dict[str, str | None] = {}
        self.rules: list[MappingRule] = []
        self.lines: dict[tuple[RuleKind, str], int] = {}

    def setting(self, line: int, name: str, raw: str | None) -> None:
        problems = self.problems
        if name in self.setting_lines or name in self.header:
            problems.add(line, name, f"set twice (first on line {self.setting_lines.get(name, '?')})")
            return
        self.setting_lines[name] = line
        value = _text(raw)
        if name in HEADER_SETTINGS:
            if name == "ledger" and value is not None and value not in get_args(LedgerKind):
                problems.add(
                    line, name, f"unknown ledger {value!r} (expected {', '.join(get_args(LedgerKind))})"
                )
                return
            self.header[name] = value
        elif name == "customer_policy":
            allowed = [p.value for p in CustomerPolicy]
            if value not in allowed:
                problems.add(line, name, f"must be one of {', '.join(allowed)}, not {value!r}")
            else:
                self.settings[name] = CustomerPolicy(value)
        elif name == "item_policy":
            if value not in (None, ItemPolicy.REQUIRE_MAPPING.value):
                problems.add(
                    line,
                    name,
                    f"{value!r} is not supported: invoice-sync does not create items in the ledger yet, "
                    "so products must be mapped (require_mapping)",
                )
        elif name == "no_tax_code":
            # Empty is meaningful (FreshBooks: no tax on the line), so it is kept as "".
            self.settings[name] = value or ""
        elif name in ("payments_back", "payout_deposits"):
            if value is None or value.lower() not in {"true", "false"}:
                problems.add(line, name, f"must be true or false, not {value!r}")
            else:
                self.settings[name] = value.lower() == "true"
        elif name == "payments_back_since":
            moment = _moment(value)
            if value is not None and moment is None:
                problems.add(
                    line,
                    name,
                    f"{value!r} is not a date (YYYY-MM-DD, UTC) or an ISO 8601 time with its zone",
                )
            else:
                self.settings[name] = moment
        elif name in OPTIONAL_SETTINGS:
            self.settings[name] = value
        else:
            known = ", ".join((*HEADER_SETTINGS, *REQUIRED_SETTINGS, *OPTIONAL_SETTINGS))
            problems.add(line, name, f"unknown setting (known: {known})")

    def rule(self, line: int, kind: RuleKind, values: dict[str, Any]) -> None:
        problems = self.problems
        count = len(problems.found)
        source = _text(values.get("source_value"))
        ledger_id = _text(values.get("ledger_id"))
        account = _text(values.get("ledger_account"))
        learned = values.get("learned")
        if source is None:
            problems.add(line, "source_value", "missing")
        elif len(source) > MAX_VALUE:
            problems.add(line, "source_value", f"longer than {MAX_VALUE} characters")
        elif kind is RuleKind.TAX_RATE and "+" in source:
            # Several rates on one line map under their ids sorted and joined by "+" (the resolver's key).
            parts = [part.strip() for part in source.split("+")]
            if not all(parts):
                problems.add(line, "source_value", f"empty tax rate id in {source!r}")
            source = "+".join(sorted(parts))
        elif kind is RuleKind.CURRENCY:
            source = source.upper()
            if len(source) != 3 or not source.isalpha():
                problems.add(line, "source_value", f"{source!r} is not an ISO 4217 currency code")
        if ledger_id is None and not (kind is RuleKind.PRODUCT and account):
            problems.add(
                line,
                "ledger_id",
                "missing" if kind is not RuleKind.PRODUCT else "missing (or give ledger_account)",
            )
        if kind is RuleKind.CURRENCY and ledger_id is not None and source is not None:
            ledger_id = ledger_id.upper()
            if ledger_id != source:
                # Payments and refunds are booked in the source's currency code; a rule that renamed
                # the invoice's alone would split one customer's documents across two currencies.
                problems.add(
                    line,
                    "ledger_id",
                    f"must be the same ISO code as the source ({source}), not {ledger_id!r}",
                )
        if account is not None and kind is not RuleKind.PRODUCT:
            problems.add(line, "ledger_account", "only product rules take an account")
        if learned is not None and kind is not RuleKind.CUSTOMER:
            problems.add(line, "learned", "only customer rules can be learned")
        if len(problems.found) > count or source is None:
            return
        key = (kind, source)
        if key in self.lines:
            problems.add(
                line,
                "source_value",
                f"duplicate {kind.value} rule for {source!r} (first on line {self.lines[key]})",
            )
            return
        self.lines[key] = line
        self.rules.append(
            MappingRule(
                kind=kind,
                source_value=source,
                ledger_id=ledger_id or "",
                ledger_account=account,
                ledger_name=_text(values.get("ledger_name")),
                source_name=_text(values.get("source_name")),
                learned=(bool(learned) if kind is RuleKind.CUSTOMER else None),
            )
        )

    def document(self, end_line: int) -> MappingDocument:
        for name in REQUIRED_SETTINGS:
            if name not in self.setting_lines:
                self.problems.add(end_line, name, "missing (every mapping file sets it)")
        self.problems.raise_any()
        ledger = self.header.get("ledger")
        return MappingDocument(
            settings=Settings(**self.settings),
            rules=tuple(self.rules),
            connection=self.header.get("connection"),
            ledger=ledger,  # type: ignore[arg-type]  # checked against LedgerKind above
            lines=self.lines,
        )


# --- YAML ---------------------------------------------------------------------------------------

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _scalar(node: yaml.Node, name: str, problems: _Problems) -> str | None:
    """A scalar as text, exactly as written: ``0123`` stays ``0123``, ``1e3`` stays ``1e3``."""
    if not isinstance(node, yaml.ScalarNode):
        problems.add(_line(node), name, "must be a single value, not a list or a mapping")
        return None
    if node.style is None and node.tag == _NULL:
        return None
    return str(node.value)


def _pairs(node: yaml.MappingNode, where: str, problems: _Problems) -> Iterator[tuple[str, yaml.Node, int]]:
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = _scalar(key_node, where, problems)
        if key is None:
            continue
        if key in seen:
            problems.add(_line(key_node), key, f"given twice in {where} (first on line {seen[key]})")
            continue
        seen[key] = _line(key_node)
        yield key, value_node, _line(key_node)


def parse_yaml(text: str, path: str = "<yaml>") -> MappingDocument:
    problems = _Problems(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MappingFileError(path, [(line, None, f"not valid YAML: {problem}")]) from None
    if not isinstance(root, yaml.MappingNode):
        line = _line(root) if root is not None else 1
        raise MappingFileError(
            path, [(line, None, "a mapping file is a YAML mapping of settings and sections")]
        )
    builder = _Builder(problems)
    for key, value, line in _pairs(root, "the file", problems):
        if key in HEADER_SETTINGS:
            builder.setting(line, key, _scalar(value, key, problems))
        elif key == "settings":
            if not isinstance(value, yaml.MappingNode):
                problems.add(_line(value), key, "must be a mapping of setting: value")
                continue
            for name, setting, setting_line in _pairs(value, "settings", problems):
                builder.setting(setting_line, name, _scalar(setting, name, problems))
        elif key in SECTIONS:
            _yaml_rules(builder, SECTIONS[key], key, value, problems)
        else:
            known = ", ".join(("connection", "ledger", "settings", *SECTIONS))
            problems.add(line, key, f"unknown section (known: {known})")
    end = int(root.end_mark.line) + 1
    return builder.document(end)


def _yaml_rules(
    builder: _Builder, kind: RuleKind, section: str, node: yaml.Node, problems: _Problems
) -> None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
        return  # an empty section
    if not isinstance(node, yaml.SequenceNode):
        problems.add(_line(node), section, "must be a list of rules")
        return
    for entry in node.value:
        if not isinstance(entry, yaml.MappingNode):
            problems.add(_line(entry), section, "each rule is a mapping (source_value: ..., ledger_id: ...)")
            continue
        values: dict[str, Any] = {}
        for name, value, line in _pairs(entry, "this rule", problems):
            if name not in RULE_FIELDS:
                problems.add(line, name, f"unknown field (known: {', '.join(RULE_FIELDS)})")
            elif name == "learned":
                if not (isinstance(value, yaml.ScalarNode) and value.tag == _BOOL):
                    problems.add(line, name, "must be true or false")
                else:
                    values[name] = value.value.lower() in {"true", "yes", "on", "y"}
            else:
                values[name] = _scalar(value, name, problems)
        builder.rule(_line(entry), kind, values)


def dump_yaml(document: MappingDocument) -> str:
    data: dict[str, Any] = {}
    if document.connection is not None:
        data["connection"] = document.connection
    if document.ledger is not None:
        data["ledger"] = document.ledger
    data["settings"] = {f.name: _plain(getattr(document.settings, f.name)) for f in fields(Settings)}
    for section, kind in SECTIONS.items():
        data[section] = [_rule_fields(rule) for rule in document.rules if rule.kind is kind]
    header = (
        "# invoice-sync mapping file (docs/cli-mappings.md). Import it with `invoice-sync mappings import`.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value.value if isinstance(value, StrEnum) else value


def _rule_fields(rule: MappingRule) -> dict[str, Any]:
    out: dict[str, Any] = {"source_value": rule.source_value, "ledger_id": rule.ledger_id}
    for name in ("ledger_account", "ledger_name", "source_name"):
        if getattr(rule, name) is not None:
            out[name] = getattr(rule, name)
    if _learned(rule):
        out["learned"] = True
    return out


def _learned(rule: MappingRule) -> bool:
    # A customer rule stored before origins were recorded (None) counts as learned.
    return rule.kind is RuleKind.CUSTOMER and rule.learned is not False


# --- CSV ----------------------------------------------------------------------------------------


def parse_csv(text: str, path: str = "<csv>") -> MappingDocument:
    problems = _Problems(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise MappingFileError(
                path, [(1, None, f"empty: the first row names the columns ({','.join(CSV_COLUMNS)})")]
            )
        columns = [cell.strip() for cell in header]
        header_line = reader.line_num
        for column in columns:
            if column not in CSV_COLUMNS:
                problems.add(
                    header_line, column or "(empty)", f"unknown column (known: {', '.join(CSV_COLUMNS)})"
                )
        for column in CSV_REQUIRED:
            if column not in columns:
                problems.add(header_line, column, "column missing from the header row")
        if len(set(columns)) != len(columns):
            problems.add(header_line, None, "a column is named twice in the header row")
        problems.raise_any()
        builder = _Builder(problems)
        kinds = {kind.value: kind for kind in RuleKind}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) > len(columns):
                problems.add(line, None, f"{len(row)} cells but the header names {len(columns)} columns")
                continue
            values = dict(zip(columns, row, strict=False))
            kind_text = values.get("kind", "").strip()
            if kind_text == "setting":
                name = values.get("source_value", "").strip()
                builder.setting(line, name, values.get("ledger_id"))
                for extra in ("ledger_account", "ledger_name", "source_name", "learned"):
                    if _text(values.get(extra)):
                        problems.add(
                            line,
                            extra,
                            "a setting row has only source_value (the name) and ledger_id (the value)",
                        )
            elif kind_text in kinds:
                rule_values: dict[str, Any] = {
                    k: v for k, v in values.items() if k not in {"kind", "learned"}
                }
                learned = _text(values.get("learned"))
                if learned is not None:
                    if learned.lower() not in {"true", "false"}:
                        problems.add(line, "learned", f"must be true, false or empty, not {learned!r}")
                    else:
                        rule_values["learned"] = learned.lower() == "true"
                builder.rule(line, kinds[kind_text], rule_values)
            else:
                known = ", ".join(["setting", *kinds])
                problems.add(line, "kind", f"unknown kind {kind_text!r} (known: {known})")
    except csv.Error as exc:
        raise MappingFileError(path, [(reader.line_num, None, f"not valid CSV: {exc}")]) from None
    return builder.document(reader.line_num)


def dump_csv(document: MappingDocument) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    blank = [""] * (len(CSV_COLUMNS) - 3)
    for name in HEADER_SETTINGS:
        value = getattr(document, name)
        if value is not None:
            writer.writerow(["setting", name, value, *blank])
    for f in fields(Settings):
        value = _plain(getattr(document.settings, f.name))
        if isinstance(value, bool):
            value = "true" if value else "false"
        if value is not None:
            writer.writerow(["setting", f.name, value, *blank])
    for rule in document.rules:
        writer.writerow(
            [
                rule.kind.value,
                rule.source_value,
                rule.ledger_id,
                rule.ledger_account or "",
                rule.ledger_name or "",
                rule.source_name or "",
                "true" if _learned(rule) else "",
            ]
        )
    return out.getvalue()


# --- either form --------------------------------------------------------------------------------


def format_of(path: str, chosen: str | None = None) -> FileFormat:
    if chosen in ("yaml", "csv"):
        return chosen  # type: ignore[return-value]
    lowered = path.lower()
    if lowered.endswith((".yaml", ".yml")):
        return "yaml"
    if lowered.endswith(".csv"):
        return "csv"
    raise MappingFileError(
        path, [(None, None, "cannot tell the form: name it .yaml, .yml or .csv, or pass --format")]
    )


def parse(text: str, path: str, form: FileFormat) -> MappingDocument:
    return parse_yaml(text, path) if form == "yaml" else parse_csv(text, path)


def dump(document: MappingDocument, form: FileFormat) -> str:
    return dump_yaml(document) if form == "yaml" else dump_csv(document)


def read(path: str, form: FileFormat, data: bytes) -> MappingDocument:
    """A file's bytes as a document; anything but UTF-8 text is one line too."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MappingFileError(path, [(line, None, "not UTF-8 text")]) from None
    return parse(text, path, form)


def check_for(document: MappingDocument, connection: Connection, path: str) -> None:
    """What a well-formed file must also be for this connection: its own, and complete for its ledger."""
    problems = _Problems(path)
    if document.connection is not None and document.connection != connection.connection_id:
        problems.add(
            None, "connection", f"the file is for {document.connection!r}, not {connection.connection_id!r}"
        )
    if document.ledger is not None and document.ledger != connection.ledger:
        problems.add(
            None,
            "ledger",
            f"the file is for {document.ledger}, but {connection.connection_id} uses {connection.ledger}",
        )
    if connection.ledger == "xero":
        for rule in document.rules:
            if rule.kind is RuleKind.PRODUCT and not rule.ledger_account:
                problems.add(
                    document.lines.get((rule.kind, rule.source_value)),
                    "ledger_account",
                    f"product {rule.source_value}: Xero lines need a revenue account code",
                )
    problems.raise_any()
