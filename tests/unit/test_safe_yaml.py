"""Every YAML file users hand us (config, tokens, agent tokens, rules) fails in one line."""

from __future__ import annotations

import pytest

from controller import config
from controller.services.service import Service, ServiceError
from mirror.rules import RuleError, load_rules
from mirror.tenancy import TokenFileError as AgentTokenFileError
from mirror.tenancy import load_tokens as load_agent_tokens
from shadownet.access import TokenFileError, load_tokens

BOMB = ('a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n'
        'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n')
LOADERS = [(config.load, config.ConfigError), (load_tokens, TokenFileError),
           (load_agent_tokens, AgentTokenFileError), (load_rules, RuleError)]


@pytest.mark.parametrize("load,error", LOADERS)
@pytest.mark.parametrize("content,needle", [
    (BOMB, "aliases"),
    ("a: " + "[" * 3000 + "]" * 3000, "nested too deeply"),
    (b"\xff\xd8\xff\xe0 binary", "not a text file"),
    ("a: 1\x00", "NUL"),
])
def test_hostile_files_are_refused_in_one_short_line(tmp_path, load, error, content, needle):
    path = tmp_path / "f.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(error) as exc:
        load(path)
    message = str(exc.value)
    assert needle in message and "\n" not in message and len(message) < 300


@pytest.mark.parametrize("load,error", LOADERS)
def test_a_directory_is_not_a_file(tmp_path, load, error):
    folder = tmp_path / "conf.d"
    folder.mkdir()
    with pytest.raises(error, match="is a directory"):
        load(folder)


def test_a_token_listed_twice_is_refused_not_silently_replaced(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  s3cret-blue: {tenant: blue}\n  s3cret-blue: {admin: true}\n")
    with pytest.raises(AgentTokenFileError, match="appears twice") as exc:
        load_agent_tokens(path)
    assert "s3cret-blue" not in str(exc.value)  # never echo a whole token


def test_a_config_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reconcile:\n  interval: 1\n  interval: 5\n")
    with pytest.raises(config.ConfigError, match="'interval' appears twice"):
        config.load(path)


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused_in_config_services_and_rules(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(f"switch_drain:\n  enter_health: {text}\n")
    with pytest.raises(config.ConfigError, match="finite"):
        config.load(path)
    svc = {"name": "web", "vip": "10.0.0.100", "port": 80,
           "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
           "thresholds": {"cooldown_seconds": float(text.replace(".", "")
                                                    .replace("nan", "nan"))}}
    with pytest.raises(ServiceError, match="finite"):
        Service.from_dict(svc)
    rules = tmp_path / "r.yaml"
    rules.write_text(f"rules:\n  - name: r\n    type: rst_storm\n    threshold: {text}\n")
    with pytest.raises(RuleError, match="finite"):
        load_rules(rules)


def test_huge_integers_in_service_settings_are_refused_briefly():
    svc = {"name": "web", "vip": "10.0.0.100", "port": 80,
           "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
           "thresholds": {"confirm": 10**400, "cooldown_seconds": 10**400}}
    with pytest.raises(ServiceError) as exc:
        Service.from_dict(svc)
    assert len(str(exc.value)) < 200
