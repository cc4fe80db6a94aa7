"""``shadownet-manager``: launch os-ken apps the way ``ryu-manager`` did.

os-ken 4.x ships no manager binary, so this one does what Neutron does: set
``os_ken.cfg.CONF`` and call ``AppManager.run_apps``. Everything a user can
get wrong (app name, ports, config file, database) is checked before os-ken
starts, and reported as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from controller import config as config_mod
from controller.state_store import StateStore, StoreError, default_db_url

DEFAULT_APPS = ["controller.app"]
EXIT_USAGE = 2


class LaunchError(Exception):
    """A problem found before start-up; the message is shown as is."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shadownet-manager",
        description="Run the shadownet OpenFlow 1.3 controller (os-ken apps).",
    )
    p.add_argument("apps", nargs="*", metavar="APP_MODULE",
                   help=f"os-ken app modules to load (default: {' '.join(DEFAULT_APPS)})")
    p.add_argument("--config-file", help="shadownet YAML config (see controller/config.py)")
    p.add_argument("--ofp-listen-host", help="OpenFlow listen address (default 0.0.0.0)")
    p.add_argument("--ofp-tcp-listen-port", type=int, help="OpenFlow TCP port (default 6653)")
    p.add_argument("--wsapi-host", help="REST API listen address (default 127.0.0.1)")
    p.add_argument("--wsapi-port", type=int, help="REST API port, 0 to disable (default 8080)")
    p.add_argument("--db-url", help=f"SQLAlchemy URL of the state database "
                                    f"(default {default_db_url()})")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    p.add_argument("--hub", choices=("eventlet", "native"),
                   help="os-ken hub: eventlet green threads (default) or native threads")
    return p


def resolve_config(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config file merged with command-line overrides, validated as one."""
    cfg = config_mod.load(args.config_file)
    overrides = {
        "ofp_listen_host": args.ofp_listen_host,
        "ofp_tcp_listen_port": args.ofp_tcp_listen_port,
        "wsapi_host": args.wsapi_host,
        "wsapi_port": args.wsapi_port,
        "db_url": args.db_url,
        "log_level": args.log_level,
        "hub": args.hub,
    }
    merged = {k: v for k, v in cfg["controller"].items()}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    doc = {**cfg, "controller": merged}
    return config_mod.validate(doc, "command line")


def check_apps(apps: list[str]) -> None:
    for name in apps:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise LaunchError(f"unknown app module {name!r} (not importable)")


def check_port_free(host: str, port: int, what: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == 98:
                raise LaunchError(f"{what} port {port} on {host} is already in use") from None
            reason = exc.strerror or exc
            raise LaunchError(f"cannot listen for {what} on {host}:{port}: {reason}") from None


def read_config(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """:func:`resolve_config` with the defaults the launcher fills in (the database)."""
    cfg = resolve_config(args)
    cfg["controller"]["db_url"] = cfg["controller"]["db_url"] or default_db_url()
    return cfg


def preflight(argv: Sequence[str] | None
              ) -> tuple[list[str], dict[str, dict[str, Any]], argparse.Namespace]:
    args = build_parser().parse_args(argv)
    cfg = read_config(args)
    apps = args.apps or DEFAULT_APPS
    check_apps(apps)
    ctl = cfg["controller"]
    check_port_free(ctl["ofp_listen_host"], ctl["ofp_tcp_listen_port"], "OpenFlow")
    if ctl["wsapi_port"]:
        check_port_free(ctl["wsapi_host"], ctl["wsapi_port"], "REST API")
    StateStore(ctl["db_url"]).close()
    return apps, cfg, args


class _Signals:
    """Set from signal handlers, polled by the main loop.

    Raising from the handler does not work under eventlet: the exception lands
    in whichever green thread runs, not in the one waiting on the apps.
    SIGTERM and SIGINT stop; SIGHUP asks for a config reload.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.reload = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._set)
        signal.signal(signal.SIGHUP, self._hup)

    def _set(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def _hup(self, _signum: int, _frame: Any) -> None:
        self.reload = True


def reload_apps(apps: Sequence[Any], read: Callable[[], dict[str, dict[str, Any]]],
                log: logging.Logger) -> bool:
    """Read the config again and hand it to every app that can reload; False when the
    new file is bad (then nothing changes and the running config stays)."""
    try:
        cfg = read()
    except (config_mod.ConfigError, LaunchError) as exc:
        log.error("config reload refused, keeping the running config: %s", exc)
        return False
    for app in apps:
        reload = getattr(app, "reload", None)
        if reload is not None:
            try:
                reload(cfg)
            except Exception:  # noqa: BLE001 - a failed reload must not stop the controller
                log.exception("config reload failed in %s", type(app).__name__)
                return False
    return True


def patch_hub(kind: str) -> None:
    """Make blocking calls cooperative under the eventlet hub: sockets, time, threads.

    Everything is patched. os-ken's ``hub.patch(thread=True)`` patches *only*
    threads, so one blocking socket call (a health probe, say) froze every green
    thread, LLDP included, until os-ken timed the links out.
    """
    os.environ["OSKEN_HUB_TYPE"] = kind
    if kind == "eventlet":
        import eventlet

        eventlet.monkey_patch()


# os-ken sends one LLDP frame per port every 0.9 s but sleeps 50 ms after each, so
# a round over P ports takes at least P * 50 ms; it drops a link after 10 s without
# one. Zoo:Bics has about 130 ports (6.5 s a round) and a busy machine stretches each
# sleep, so links were timed out while up and paths flapped mid-pingall. A 2 ms guard
# makes a round over 1,000 ports take 2 s; port status still reports a cut at once.
LLDP_SEND_GUARD = 0.002


def tune_link_discovery(switches_cls: Any) -> None:
    """Set os-ken's LLDP pacing so a round over every port fits well inside its timeout."""
    switches_cls.LLDP_SEND_GUARD = LLDP_SEND_GUARD


def run(apps: list[str], cfg: dict[str, dict[str, Any]],
        read: Callable[[], dict[str, dict[str, Any]]] | None = None) -> int:
    """Run the apps until a stop signal; ``read`` gives a fresh config on SIGHUP."""
    ctl = cfg["controller"]
    import warnings

    warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
    # os-ken picks its hub from the environment at import time: patch first.
    patch_hub(ctl["hub"])
    from os_ken import cfg as osken_cfg
    from os_ken.base import app_manager
    from os_ken.controller import controller as _ofp_controller  # noqa: F401 - registers options
    from os_ken.lib import hub
    from os_ken.topology import switches as osken_switches  # registers observe-links

    from controller import osken_fixes

    osken_fixes.apply()  # before any app sees a packet-in
    conf = osken_cfg.CONF
    conf(args=[], project="os_ken")
    conf.set_override("ofp_listen_host", ctl["ofp_listen_host"])
    conf.set_override("ofp_tcp_listen_port", ctl["ofp_tcp_listen_port"])
    if ctl["ofp_tls_key"]:
        # os-ken serves TLS only, on its SSL port, once a key and certificate are set.
        conf.set_override("ofp_ssl_listen_port", ctl["ofp_tcp_listen_port"])
        conf.set_override("ctl_privkey", ctl["ofp_tls_key"])
        conf.set_override("ctl_cert", ctl["ofp_tls_cert"])
        if ctl["ofp_tls_ca_certs"]:
            conf.set_override("ca_certs", ctl["ofp_tls_ca_certs"])
    conf.set_override("observe_links", True)
    tune_link_discovery(osken_switches.Switches)
    log = logging.getLogger("shadownet")
    log.info("shadownet-manager: apps=%s openflow=%s:%s rest=%s:%s db=%s hub=%s",
             ",".join(apps), ctl["ofp_listen_host"], ctl["ofp_tcp_listen_port"],
             ctl["wsapi_host"], ctl["wsapi_port"], ctl["db_url"], ctl["hub"])
    stop = _Signals()
    stop.install()
    manager = app_manager.AppManager.get_instance()
    manager.load_apps(apps)
    services = manager.instantiate_apps(**manager.create_contexts(), shadownet_config=cfg)
    try:
        while stop.signum is None and any(not _finished(t) for t in services):
            hub.sleep(0.2)
            if stop.reload:
                stop.reload = False
                log.info("shadownet-manager: SIGHUP received, reloading the config")
                if read is not None:
                    reload_apps(list(manager.applications.values()), read, log)
    finally:
        _shutdown(manager, log)
    if stop.signum is not None:
        log.info("shadownet-manager: %s received", signal.Signals(stop.signum).name)
    log.info("shadownet-manager: stopped")
    return 0


def _shutdown(manager: Any, log: logging.Logger, grace: float = 3.0) -> None:
    """Stop shadownet's apps first (they save state), then give os-ken a bounded grace.

    os-ken's OpenFlow server loop cannot be joined, so a plain ``close()`` can
    hang; after the grace period the process exits anyway (see ``main``).
    """
    import threading

    ours = [
        n for n, a in manager.applications.items()
        if type(a).__module__.startswith("controller")
    ]
    for name in ours:
        manager.uninstantiate(name)
    done = threading.Event()

    def _close_rest() -> None:
        try:
            manager.close()
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.debug("os-ken close failed", exc_info=True)
        done.set()

    threading.Thread(target=_close_rest, daemon=True).start()
    if not done.wait(grace):
        log.debug("os-ken apps did not stop within %.1fs; exiting anyway", grace)


def _finished(thread: Any) -> bool:
    dead = getattr(thread, "dead", None)  # eventlet GreenThread
    if dead is not None:
        return bool(dead)
    return not thread.is_alive()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        apps, cfg, args = preflight(argv)
    except (LaunchError, config_mod.ConfigError, StoreError) as exc:
        print(f"shadownet-manager: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=cfg["controller"]["log_level"],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = run(apps, cfg, lambda: read_config(args))
    except ImportError as exc:
        print(f"shadownet-manager: error: cannot load app: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    # os-ken leaves non-daemon threads behind; state is saved, so leave now.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
