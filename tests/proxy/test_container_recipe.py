"""docs/container.md cannot be built here (no container runtime): these tests keep it true
to the gateway: its command's options are ones ``aigw proxy`` takes, and its config
excerpt, put into the sample config, loads."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from proxy import load_gateway_config
from tests.conftest import REPO, run_aigw

DOC = (REPO / "docs" / "container.md").read_text(encoding="utf-8")


def _block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", DOC, re.S)
    assert match is not None, f"no {language} block in docs/container.md"
    return match.group(1)


def test_the_entrypoint_is_aigw_proxy_with_options_it_takes() -> None:
    line = next(x for x in _block("dockerfile").splitlines() if x.startswith("ENTRYPOINT"))
    command = json.loads(line.removeprefix("ENTRYPOINT"))
    assert command[:2] == ["aigw", "proxy"]
    options = [arg for arg in command[2:] if arg.startswith("--")]
    assert options == ["--config", "--host", "--port", "--workers"]
    usage = run_aigw("proxy", "--help")
    assert usage.returncode == 0, usage.stderr
    for option in options:
        assert option in usage.stdout
    healthcheck = next(x for x in _block("dockerfile").splitlines() if "urlopen" in x)
    assert "http://127.0.0.1:8080/readyz" in healthcheck  # the port the entrypoint binds
    assert command[command.index("--port") + 1] == "8080"


def test_the_config_excerpt_loads_in_the_sample_config(tmp_path: Path) -> None:
    """Each key of the excerpt replaces (or joins) its table in sample_data/gateway.toml,
    with /var/lib/aigw under tmp_path; the gateway loads the result and keeps the values."""
    excerpt = tomllib.loads(_block("toml"))
    config = (REPO / "sample_data" / "gateway.toml").read_text(encoding="utf-8")
    for table, keys in excerpt.items():
        for key, value in keys.items():
            local = json.dumps(value.replace("/var/lib/aigw", str(tmp_path)))
            config = _set(config, table, key, local)
    path = tmp_path / "gateway.toml"
    path.write_text(config, encoding="utf-8")

    loaded = load_gateway_config(path, {"AIGW_SIMULATED_PROVIDER_KEY": "sk-test"})

    assert loaded.logs.destination == excerpt["logs"]["destination"]
    assert Path(loaded.logs.spool_dir) == tmp_path / "spool"
    assert Path(loaded.cache_path) == tmp_path / "cache.sqlite"


def _set(config: str, table: str, key: str, value: str) -> str:
    """``config`` with ``key = value`` first in ``[table]`` and its old line removed."""
    header = f"[{table}]"
    start = config.index(header)
    start = config.index("\n", start) + 1
    end = config.find("\n[", start)
    body = config[start : end if end != -1 else None]
    body = re.sub(rf"(?m)^{re.escape(key)}\s*=.*\n", "", body, count=1)
    rest = config[end:] if end != -1 else ""
    return config[:start] + f"{key} = {value}\n" + body + rest
