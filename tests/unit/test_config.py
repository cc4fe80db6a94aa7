"""shadownet.yaml validation: every refusal names the key and the expected type."""

from __future__ import annotations

import pytest

from controller import config


def test_defaults_without_file():
    cfg = config.load(None)
    assert cfg["controller"]["ofp_tcp_listen_port"] == 6653
    assert cfg["forwarding"]["idle_timeout"] == 60


def test_valid_file_merges_over_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("forwarding:\n  idle_timeout: 5\ncontroller:\n  log_level: debug\n")
    cfg = config.load(path)
    assert cfg["forwarding"]["idle_timeout"] == 5
    assert cfg["forwarding"]["priority"] == 100
    assert cfg["controller"]["log_level"] == "DEBUG"


@pytest.mark.parametrize("text,needle", [
    ("forwarding:\n  idle_timeout: abc\n",
     "key 'forwarding.idle_timeout' must be an integer, got str 'abc'"),
    ("forwarding:\n  idle_timout: 5\n", "unknown key 'forwarding.idle_timout'"),
    ("nosuch:\n  a: 1\n", "unknown section 'nosuch'"),
    ("controller:\n  ofp_tcp_listen_port: 70000\n", "'controller.ofp_tcp_listen_port' must be <="),
    ("controller:\n  hub: gevent\n", "'controller.hub' must be one of eventlet, native"),
    ("controller:\n  wsapi_port: true\n", "'controller.wsapi_port' must be an integer"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("forwarding: 5\n", "section 'forwarding' must be a mapping"),
    ("forwarding:\n  idle_timeout: [1\n", "invalid YAML at line"),
])
def test_bad_files_name_the_problem(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    assert needle in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")


def test_empty_file_is_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert config.load(path) == config.defaults()
