"""The controller's side of ``webui.core_api.CoreAPI``: what the REST API may ask of it.

A thin adapter over :class:`~controller.core.ControllerCore`: reads pass
through; changes call the core, which returns the OpenFlow messages, and send
them, so the web layer never handles a message.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from controller.core import ControllerCore


class ControllerAPI:
    """Implements ``webui.core_api.CoreAPI`` over one core."""

    def __init__(self, core: ControllerCore) -> None:
        self.core = core

    # --- reads ----------------------------------------------------------------------------
    def switches(self) -> list[dict[str, Any]]:
        return self.core.switches()

    def links(self) -> list[dict[str, int]]:
        return self.core.links()

    def host_list(self) -> list[dict[str, Any]]:
        return self.core.host_list()

    def path(self, src: str, dst: str) -> dict[str, Any]:
        return self.core.path(src, dst)

    def flows(self, *, dpid: int | None, status: str | None, mac: str | None,
              cookie: int | None, limit: int | None) -> list[dict[str, Any]]:
        return self.core.flows(dpid=dpid, status=status, mac=mac, cookie=cookie, limit=limit)

    def mirror_list(self) -> list[dict[str, Any]]:
        return self.core.mirror_list()

    def shunts(self, container: str) -> list[dict[str, Any]] | None:
        return self.core.shunts(container)

    def service_list(self) -> list[dict[str, Any]]:
        return self.core.service_list()

    def service_events(self) -> list[dict[str, Any]]:
        return self.core.service_events()

    def service_shadow(self, name: str) -> list[dict[str, Any]]:
        return self.core.service_shadow(name)

    def switch_health(self) -> dict[str, Any]:
        return self.core.switch_health()

    def health(self) -> dict[str, Any]:
        return self.core.health()

    def metrics_text(self) -> bytes:
        self.core.refresh_gauges()
        return generate_latest(self.core.metrics.registry)

    # --- changes --------------------------------------------------------------------------
    def register_mirror(self, body: Any) -> dict[str, Any]:
        mirror, msgs = self.core.add_mirror(body)
        self.core.send(msgs)
        return mirror

    def unregister_mirror(self, container: str) -> bool:
        msgs = self.core.remove_mirror(container)
        if msgs is None:
            return False
        self.core.send(msgs)
        return True

    def start_shunt(self, container: str, body: Any) -> tuple[dict[str, Any], bool]:
        view, created, msgs = self.core.add_shunt(container, body)
        self.core.send(msgs)
        return view, created

    def end_shunt(self, container: str, shunt_id: str) -> bool:
        msgs = self.core.remove_shunt(container, shunt_id)
        if msgs is None:
            return False
        self.core.send(msgs)
        return True

    def add_service(self, body: Any) -> dict[str, Any]:
        return self.core.add_service(body)  # the core sends its punts itself

    def switch_service(self, name: str, node: str) -> dict[str, Any]:
        return self.core.switch_service(name, node)

    def set_health(self, host: str, healthy: bool, reason: str) -> dict[str, Any]:
        return self.core.set_health(host, healthy, reason)
