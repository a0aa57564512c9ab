"""The operator CLI finds its deployment, or says in one line why it cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from invoice_sync_ops.cli import main
from invoice_sync_ops.local.stack import LocalStack
from invoice_sync_ops.target import Target, from_file, resolve


def test_the_local_stacks_target_names_its_resources(stack: LocalStack, target_file: Path) -> None:
    """Given the running local stack, the target file it writes names moto's endpoint, the same
    tables, queues and bucket the functions use, and the ledger sandbox push talks to."""
    target = from_file(target_file)
    assert target.aws_endpoint == stack.aws_endpoint
    assert stack.resources is not None
    assert (target.sync_table, target.sync_queue_url) == (
        stack.resources.sync_table,
        stack.resources.sync_queue_url,
    )
    assert target.settings().quickbooks_api_base == stack.ledger_url
    tables = target.client("dynamodb").list_tables()["TableNames"]
    assert target.sync_table in tables


def test_no_deployment_given_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given no --stack, --local or --target (and none in the environment), a deployment command
    exits 1 with one line saying what to pass, and no traceback."""
    monkeypatch.delenv("INVOICE_SYNC_TARGET", raising=False)
    monkeypatch.delenv("INVOICE_SYNC_STACK", raising=False)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - argparse exits if no command is registered
        resolve(target_file=None, stack=None, local=False, environ={})
    assert "--stack NAME" in str(caught.value)


def test_a_missing_target_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no target file"):
        from_file(tmp_path / "none.json")


def test_a_target_file_round_trips(tmp_path: Path, target_file: Path) -> None:
    path = tmp_path / "copy.json"
    from_file(target_file).write(path)
    assert from_file(path) == Target.model_validate_json(target_file.read_text())
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_shell_with_no_aws_configuration_reaches_the_local_stack(target_file: Path, tmp_path: Path) -> None:
    """Given a terminal with no AWS credentials or configuration at all (a laptop that never ran
    `aws configure`), the installed CLI still works against the local stack's target file: moto's
    server takes any key, and no real key is ever sent there."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_") and name != "INVOICE_SYNC_TARGET"
    }
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("invoice-sync")),
            "connections",
            "--target",
            str(target_file),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [c["connection"] for c in json.loads(result.stdout)] == ["acme"]
