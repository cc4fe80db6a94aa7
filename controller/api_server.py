"""Serve a WSGI app inside the controller process, on whichever hub os-ken runs."""

from __future__ import annotations

import logging
from typing import Any

from os_ken.lib import hub

LOG = logging.getLogger(__name__)


class ApiServer:
    """A WSGI server that can be stopped from another thread (for clean shutdown)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> None:
        self._thread = hub.spawn(self._serve)

    def _serve(self) -> None:
        LOG.info("REST API on http://%s:%s/", self.host, self.port)
        if hub.HUB_TYPE == "eventlet":
            import eventlet.wsgi

            sock = hub.listen((self.host, self.port))
            self._server = sock
            eventlet.wsgi.server(sock, self.app, log=_Quiet(), log_output=False)
        else:
            from werkzeug.serving import make_server

            self._server = make_server(self.host, self.port, self.app, threaded=True)
            self._server.serve_forever()

    def stop(self) -> None:
        if hub.HUB_TYPE == "eventlet":
            if self._thread is not None:
                hub.kill(self._thread)
            if self._server is not None:
                self._server.close()
        elif self._server is not None:
            self._server.shutdown()


class _Quiet:
    def write(self, message: str) -> None:
        LOG.debug(message.rstrip())
