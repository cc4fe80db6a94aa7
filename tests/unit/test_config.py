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
     "forwarding.idle_timeout: must be an integer, got str 'abc'"),
    ("forwarding:\n  idle_timout: 5\n", "forwarding: unknown key 'idle_timout'"),
    ("nosuch:\n  a: 1\n", "unknown key 'nosuch'"),
    ("controller:\n  ofp_tcp_listen_port: 70000\n",
     "controller.ofp_tcp_listen_port: must be between 1 and 65535, got 70000"),
    ("controller:\n  hub: gevent\n",
     "controller.hub: must be one of eventlet, native, got str 'gevent'"),
    ("controller:\n  wsapi_port: true\n",
     "controller.wsapi_port: must be an integer, got bool True"),
    ("- a\n- b\n", "top level: must be a mapping, got list ['a', 'b']"),
    ("forwarding: 5\n", 'forwarding: must be a mapping, got int 5'),
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


def test_switch_draining_defaults_and_values(tmp_path):
    cfg = config.load(None)["switch_drain"]
    assert cfg == {"critical": [], "sample_percent": 2, "probe_interval": 1.0,
                   "enter_probability": 0.9, "enter_health": 0.5, "confirm": 2,
                   "cooldown_seconds": 30, "exit_health": 0.8, "exit_probability": 0.9}
    path = tmp_path / "c.yaml"
    path.write_text("switch_drain:\n  critical: [2, 0x10]\n  sample_percent: 0\n"
                    "  cooldown_seconds: 5.5\n")
    cfg = config.load(path)["switch_drain"]
    assert cfg["critical"] == [2, 16] and cfg["sample_percent"] == 0
    assert cfg["cooldown_seconds"] == 5.5 and cfg["confirm"] == 2


def test_renamed_switch_keys_are_still_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.yaml"
    path.write_text("switch_shadowing:\n  critical: [2]\n  cool_down: 7\n")
    with caplog.at_level("WARNING"):
        cfg = config.load(path)["switch_drain"]
    assert cfg["critical"] == [2] and cfg["cooldown_seconds"] == 7
    assert "'switch_shadowing' is now called 'switch_drain'" in caplog.text
    assert "'switch_drain.cool_down' is now called 'switch_drain.cooldown_seconds'" in caplog.text


@pytest.mark.parametrize("text,needle", [
    ("switch_drain:\n  critical: 2\n",
     'switch_drain.critical: must be a list, got int 2'),
    ("switch_drain:\n  critical: [1, s2]\n",
     "switch_drain.critical[1]: must be an integer, got str 's2'"),
    ("switch_drain:\n  critical: [true]\n",
     'switch_drain.critical[0]: must be an integer, got bool True'),
    ("switch_drain:\n  critical: [-1]\n",
     'switch_drain.critical[0]: must be between 0 and 18446744073709551615, got -1'),
    ("switch_drain:\n  sample_percent: 6\n",
     'switch_drain.sample_percent: must be between 0 and 5, got 6'),
    ("switch_drain:\n  sample_percent: -1\n",
     'switch_drain.sample_percent: must be between 0 and 5, got -1'),
    ("switch_drain:\n  probe_interval: fast\n",
     "switch_drain.probe_interval: must be a number, got str 'fast'"),
    ("switch_drain:\n  enter_probability: 1.5\n",
     'switch_drain.enter_probability: must be between 0 and 1, got 1.5'),
    ("switch_drain:\n  confirm: 0\n", 'switch_drain.confirm: must be between 1 and 1000, got 0'),
    ("switch_drain:\n  confirm: 1.5\n",
     'switch_drain.confirm: must be an integer, got float 1.5'),
    ("switch_drain:\n  cooldown_seconds: -3\n",
     'switch_drain.cooldown_seconds: must be between 0 and 1000000, got -3'),
    ("switch_drain:\n  exit_probability: 0.95\n",
     "switch_drain.exit_probability: must not be above switch_drain.enter_probability"),
    ("switch_drain:\n  cool_down: 3\n  cooldown_seconds: 4\n",
     "keys 'switch_drain.cool_down' and 'switch_drain.cooldown_seconds' are the same key"),
    ("switch_shadowing: {}\nswitch_drain: {}\n",
     "sections 'switch_shadowing' and 'switch_drain' are the same section"),
    ("prediction:\n  enabled: yes please\n",
     "prediction.enabled: must be true or false, got str 'yes please'"),
    ("switch_drain:\n  exit_health: 0.4\n",
     "switch_drain.exit_health: must be above switch_drain.enter_health"),
    ("switch_drain:\n  critcal: [1]\n", "switch_drain: unknown key 'critcal'"),
    ("switch_drain: [1]\n", 'switch_drain: must be a mapping, got list [1]'),
])
def test_bad_switch_drain_names_the_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    assert needle in str(exc.value)


def test_node_probes_have_their_own_keys(tmp_path):
    assert config.defaults()["node_probes"] == {
        "interval": 2, "count": 3, "timeout": 0.5,
        "liveness_interval": 0.1, "liveness_timeout": 0.25, "liveness_misses": 5}
    path = tmp_path / "c.yaml"
    path.write_text("node_probes:\n  interval: 1\n  count: 5\n")
    loaded = config.load(path)
    assert loaded["node_probes"]["interval"] == 1 and loaded["reconcile"]["interval"] == 10
    path.write_text("node_probes:\n  count: 0\n")
    with pytest.raises(config.ConfigError,
                       match="node_probes.count: must be between 1 and 100, got 0"):
        config.load(path)


def test_liveness_keys_are_checked(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("node_probes:\n  liveness_interval: 0\n")
    assert config.load(path)["node_probes"]["liveness_interval"] == 0  # off
    path.write_text("node_probes:\n  liveness_misses: 0\n")
    with pytest.raises(config.ConfigError, match="node_probes.liveness_misses: must be between"):
        config.load(path)
