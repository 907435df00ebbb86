"""Settings files: one reader, misspelt keys refused with the file and the key named, and
the default files looked for in one order."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import load_alerts_config
from alerts.errors import BudgetConfigError
from app.settings import load_settings
from core.errors import ConfigError
from core.settings import budgets_file, config_file, read_toml

DIMENSIONS = ("gateway", "provider", "model", "endpoint", "api_key", "team", "user", "agent")


def test_a_misspelt_budget_key_is_an_error_not_a_budget_for_everything(tmp_path: Path) -> None:
    """``splitby`` used to be ignored, so the budget covered all spend; now it is refused."""
    path = tmp_path / "budgets.toml"
    path.write_text(
        '[channels.box]\ntype = "outbox"\nfolder = "out"\n\n'
        '[[budget]]\nname = "per-agent"\namount_usd = 5\nsplitby = "agent"\nchannels = ["box"]\n'
    )
    with pytest.raises(BudgetConfigError) as caught:
        load_alerts_config(path, dimensions=DIMENSIONS, environ={})
    assert str(caught.value).startswith(f"{path}: budget per-agent: `splitby` is not a known key")
    assert caught.value.key == "splitby"
    assert caught.value.budget == "budget per-agent"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[model]\ntenant = 'team'\n",
            "unknown key 'model' (known: engine, ingest, models, outcomes, statements, warehouse, "
            "whatif)",
        ),
        ("[models]\ntennant = 'team'\n", "[models]: unknown key 'tennant'"),
        ("[ingest]\nqualty = 'warn'\n", "[ingest]: unknown key 'qualty'"),
        ("[statements]\nunallocated = 'owner:'\n", "[statements] unallocated 'owner:' must be"),
        ("[statements]\nallocate = 'none'\n", "[statements]: unknown key 'allocate'"),
        ("[outcomes]\nunit = 'ticket_id'\n", "[outcomes]: unknown key 'unit'"),
        ("[outcomes]\nunit_key = 3\n", "[outcomes] unit_key must name a metadata key"),
        ("[whatif]\nbatch_keys = 'agent'\n", "[whatif]: unknown key 'batch_keys'"),
    ],
)
def test_unknown_keys_in_aigw_toml_name_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "aigw.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_unknown_channel_and_rule_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text('[channels.box]\ntype = "outbox"\nfolder = "out"\nfoldr = "x"\n')
    with pytest.raises(BudgetConfigError, match=r"channel box: `foldr` is not a known key"):
        load_alerts_config(path, dimensions=DIMENSIONS, environ={})
    path.write_text('[[anomaly]]\nname = "r"\nscope = "agent"\nmin_scor = 3\nchannels = []\n')
    with pytest.raises(BudgetConfigError, match=r"anomaly rule r: `min_scor` is not a known"):
        load_alerts_config(path, dimensions=DIMENSIONS, environ={})


def test_a_secret_channel_setting_may_name_its_variable(tmp_path: Path) -> None:
    """``webhook_url_env`` is the ``_env`` form of a known key, not an unknown key."""
    path = tmp_path / "budgets.toml"
    path.write_text('[channels.s]\ntype = "slack"\nwebhook_url_env = "HOOK"\n')
    config = load_alerts_config(path, dimensions=DIMENSIONS, environ={"HOOK": "https://h"})
    assert dict(config.channels["s"].settings) == {"webhook_url": "https://h"}


def test_the_one_reader_says_which_file_failed(tmp_path: Path) -> None:
    broken = tmp_path / "aigw.toml"
    broken.write_text("[models\n")
    with pytest.raises(ConfigError, match=rf"^config {broken} is not valid TOML: "):
        read_toml(broken)
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=rf"^cannot read config {missing}: No such file"):
        read_toml(missing)


def test_config_files_are_looked_for_flag_then_environment_then_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_file(None, {}) is None
    assert budgets_file(None, {}) is None
    (tmp_path / "aigw.toml").write_text("")
    (tmp_path / "budgets.toml").write_text("")
    assert config_file(None, {}) == Path("aigw.toml")
    assert budgets_file(None, {}) == Path("budgets.toml")
    assert config_file(None, {"AIGW_CONFIG": "/etc/aigw.toml"}) == Path("/etc/aigw.toml")
    assert budgets_file(None, {"AIGW_BUDGETS": "/etc/b.toml"}) == Path("/etc/b.toml")
    assert config_file(Path("flag.toml"), {"AIGW_CONFIG": "/etc/aigw.toml"}) == Path("flag.toml")


def test_settings_are_built_once_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "aigw.toml"
    path.write_text("[models]\ntenant = 'team'\n[ingest]\nquality = 'warn'\n")
    settings = load_settings(path, {"AIGW_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----"})
    assert settings.models.tenant == "team"
    assert settings.ingest.quality == "warn"
    assert settings.private_key_pem == b"-----BEGIN PRIVATE KEY-----"
    assert "BEGIN" not in repr(settings)
