"""Service declarations: valid ones load, bad ones are refused naming the key."""

from __future__ import annotations

import pytest

from controller.services.service import (
    Service,
    ServiceError,
    ServiceTable,
    Thresholds,
    default_vip_mac,
    load_services,
    services_from_config,
)


def body(**over):
    data = {
        "name": "web", "vip": "10.0.0.100", "port": 80,
        "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
        "standbys": [{"name": "h3", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03",
                      "port": 8080, "capacity": 50}],
    }
    data.update(over)
    return data


def test_defaults_and_derived_fields():
    svc = Service.from_dict(body())
    assert (svc.proto, svc.mode, svc.ip_proto, svc.drain_seconds) == ("tcp", "stateful", 6, 30.0)
    assert svc.primary.port == 80  # the VIP port unless the node says otherwise
    assert svc.standbys[0].port == 8080 and svc.standbys[0].capacity == 50
    assert svc.vip_mac == default_vip_mac("web") and svc.vip_mac.startswith("02:53:48:")
    assert [n.name for n in svc.nodes] == ["h2", "h3"] and svc.preference("h3") == 1
    assert svc.thresholds == Thresholds()
    assert Service.from_dict(svc.as_dict() | {"name": "web"}).as_dict() == svc.as_dict()


@pytest.mark.parametrize("over,needle", [
    ({"vip": "10.0.0"}, "service.vip: must be an IPv4 address, got str '10.0.0'"),
    ({"vip": "224.0.0.1"}, "service.vip: must be a unicast address"),
    ({"port": 0}, "service.port: must be between 1 and 65535, got 0"),
    ({"port": "80"}, "service.port: must be an integer, got str '80'"),
    ({"proto": "sctp"}, "service.proto: must be one of tcp, udp"),
    ({"mode": "sticky"}, "service.mode: must be one of stateless, stateful"),
    ({"primary": None}, "service.primary: is required"),
    ({"primary": {"name": "h2", "ip": "10.0.0.2"}}, "service.primary.mac: is required"),
    ({"primary": {"name": "h2", "ip": "10.0.0.2", "mac": "01:00:00:00:00:02"}},
     "service.primary.mac: must be a unicast MAC"),
    ({"primary": {"name": "h2", "ip": "10.0.0.2", "mac": "zz"}},
     "service.primary.mac: must be a MAC like"),
    ({"standbys": {"name": "h3"}}, "service.standbys: must be a list of nodes"),
    ({"standbys": [{"name": "h3", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03",
                    "capacity": 0}]}, "service.standbys[0].capacity: must be between 1"),
    ({"standbys": [{"name": "h2", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03"}]},
     "service.standbys[0].name: 'h2' is already used by service.primary"),
    ({"standbys": [{"name": "h3", "ip": "10.0.0.100", "mac": "00:00:00:00:00:03"}]},
     "service.standbys[0].ip: a node cannot have the VIP"),
    ({"colour": "red"}, "service: unknown key 'colour'"),
    ({"drain_seconds": -1}, "service.drain_seconds: must be between 0 and 86400"),
    ({"thresholds": {"enter_probability": 1.5}},
     "service.thresholds.enter_probability: must be between 0 and 1, got 1.5"),
    ({"thresholds": {"enter_probability": 0.3}},
     "service.thresholds.exit_probability: must be below enter_probability"),
    ({"thresholds": {"exit_health": 0.2}},
     "service.thresholds.exit_health: must be above enter_health"),
    ({"thresholds": {"confirm": 0}}, "service.thresholds.confirm: must be between 1"),
    ({"thresholds": {"adaptive": "yes"}}, "service.thresholds.adaptive: must be true or false"),
    ({"thresholds": {"cooldown": 5}}, "service.thresholds: unknown key 'cooldown'"),
])
def test_bad_declarations_name_the_key(over, needle):
    with pytest.raises(ServiceError) as exc:
        Service.from_dict(body(**over))
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_section_loader_names_the_file_and_index(tmp_path):
    path = tmp_path / "shadownet.yaml"
    path.write_text(
        "forwarding: {idle_timeout: 5}\n"
        "services:\n"
        "  - name: web\n    vip: 10.0.0.100\n    port: 80\n    mode: stateless\n"
        "    primary: {name: h2, ip: 10.0.0.2, mac: '00:00:00:00:00:02'}\n"
        "  - name: dns\n    vip: 10.0.0.101\n    port: 53\n    proto: udp\n"
        "    primary: {name: h4, ip: 10.0.0.4, mac: '00:00:00:00:00:04'}\n"
        "    standbys: [{name: h5, ip: 10.0.0.5, mac: '00:00:00:00:00:05'}]\n")
    table = load_services(path)
    assert [s.name for s in table] == ["dns", "web"]
    assert table.get("web").mode == "stateless"
    assert [s.name for s in table.by_vip("10.0.0.101", 53, "udp")] == ["dns"]
    assert table.by_vip("10.0.0.101", 53, "tcp") == []
    path.write_text("services:\n  - name: web\n    vip: 10.0.0.100\n    port: x\n")
    with pytest.raises(ServiceError, match=r"shadownet.yaml: services\[0\] \(web\)\.port: "
                                            r"must be an integer"):
        load_services(path)
    path.write_text("services: {web: 1}\n")
    with pytest.raises(ServiceError, match="key 'services' must be a list"):
        load_services(path)
    assert len(load_services(_write(tmp_path, "other: 1\n"))) == 0


def _write(tmp_path, text):
    p = tmp_path / "x.yaml"
    p.write_text(text)
    return p


def test_table_refuses_conflicts_between_services():
    table = ServiceTable([Service.from_dict(body())])
    with pytest.raises(ServiceError, match="vip 10.0.0.100:80/tcp is already service 'web'"):
        table.add(Service.from_dict(body(name="web2")))
    with pytest.raises(ServiceError, match="vip 10.0.0.3 is a node of service 'web'"):
        table.add(Service.from_dict(body(name="api", vip="10.0.0.3", standbys=[])))
    with pytest.raises(ServiceError, match="node 'h2' is 10.0.0.2/00:00:00:00:00:02 in "
                                           "service 'web'"):
        table.add(Service.from_dict(body(name="api", vip="10.0.0.101", primary={
            "name": "h2", "ip": "10.0.0.9", "mac": "00:00:00:00:00:09"}, standbys=[])))
    # Same service name replaces; the same host may serve two services.
    assert table.add(Service.from_dict(body(port=81))) is not None
    table.add(Service.from_dict(body(name="api", vip="10.0.0.101")))
    assert len(table) == 2 and table.vips()["10.0.0.101"] == default_vip_mac("api")
    with pytest.raises(ServiceError, match=r"services\[1\].name: duplicate service 'web'"):
        services_from_config([body(), body()])


def test_monitor_flag_is_validated():
    from controller.services.service import Service, ServiceError

    base = {"name": "web", "vip": "10.0.0.100", "port": 80,
            "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"}}
    assert Service.from_dict(base).monitor is True
    assert Service.from_dict({**base, "monitor": False}).monitor is False
    with pytest.raises(ServiceError, match=r"service\.monitor: must be true or false"):
        Service.from_dict({**base, "monitor": "no"})
