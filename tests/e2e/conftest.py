"""End-to-end: the local stack as ``make demo`` runs it: moto's server and the QuickBooks sandbox
over HTTP, webhooks posted over HTTP to the local HTTP API, push fed by the SQS event source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from invoice_sync_ops.cli import main
from invoice_sync_ops.local.stack import LocalStack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack() as running:
        yield running


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def target_file(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file ``invoice-sync local up`` would write for this stack: what ``--target`` reads."""
    path = tmp_path_factory.mktemp("target") / "target.json"
    stack.target().write(path)
    return path


@pytest.fixture
def cli(target_file: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Runs ``invoice-sync ARGS --target <this stack>`` in this process, as a person would type it."""

    def run(*args: str, target: bool = True) -> CliResult:
        capsys.readouterr()
        code = main([*args, "--target", str(target_file)] if target else list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
