"""``nb2prod keys add|list|revoke``: the key printed once, names listed, errors as one sentence."""

from __future__ import annotations

from typer.testing import CliRunner

from nb2prod import cli_keys
from nb2prod.cli import app
from nb2prod.serving import keys


def test_add_list_revoke(tmp_path, monkeypatch):
    path = tmp_path / "keys.json"
    monkeypatch.setenv(keys.ENV_FILE, str(path))  # the default --file
    added = CliRunner().invoke(app, ["keys", "add", "alice", "--rate", "5/s"])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert key.startswith("nb2p.") and key not in path.read_text()
    assert keys.Keys(path).lookup(key) == ("alice", keys.parse_rate("5/s"))
    listed = CliRunner().invoke(app, ["keys", "list", "--file", str(path)])
    assert listed.stdout.startswith("alice\tactive\tcreated ") and "rate 5/s" in listed.stdout
    assert key not in listed.stdout
    assert CliRunner().invoke(app, ["keys", "revoke", "alice"]).exit_code == 0
    assert "alice\trevoked " in CliRunner().invoke(app, ["keys", "list"]).stdout


def test_errors_are_one_sentence_and_exit_1(tmp_path):
    path = str(tmp_path / "keys.json")
    result = CliRunner().invoke(app, ["keys", "revoke", "nobody", "--file", path])
    assert result.exit_code == 1 and "There is no key named 'nobody'" in result.stderr
    result = CliRunner().invoke(app, ["keys", "add", "a", "--rate", "lots", "--file", path])
    assert result.exit_code == 1 and "is not a rate" in result.stderr


def test_the_cli_names_the_same_variable_as_the_service():
    assert cli_keys.ENV_FILE == keys.ENV_FILE
