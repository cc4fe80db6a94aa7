"""OpenFlow over TLS: the manager's OpenFlow port speaks TLS only, and with a CA it
accepts only switches holding a certificate that CA signed (real sockets, no OVS)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest

from controller import config
from lab.controller_process import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _cert(tmp_path, name: str, ca: tuple | None = None) -> tuple:
    key, crt = tmp_path / f"{name}-key.pem", tmp_path / f"{name}.pem"
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", f"/CN={name}", "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
    else:
        csr = tmp_path / f"{name}.csr"
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
                        f"/CN={name}", "-keyout", key, "-out", csr],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0],
                        "-CAcreateserial", "-days", "1", "-out", crt],
                       check=True, capture_output=True)
    return key, crt


def _hello(port: int, client: tuple | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if client is not None:
        ctx.load_cert_chain(client[1], client[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as tls:
            return tls.recv(8)


def test_openflow_port_speaks_tls_only_and_checks_switch_certificates(tmp_path):
    ca = _cert(tmp_path, "switch-ca")
    ctl = _cert(tmp_path, "controller")
    switch = _cert(tmp_path, "switch", ca)
    stranger = _cert(tmp_path, "stranger")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"controller:\n  ofp_tls_key: {ctl[0]}\n  ofp_tls_cert: {ctl[1]}\n"
                   f"  ofp_tls_ca_certs: {ca[1]}\n")
    ofp = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.manager", "--config-file", str(cfg),
         "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(ofp),
         "--wsapi-port", "0", "--db-url", f"sqlite:///{tmp_path}/s.db"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        hello = b""
        for _ in range(100):
            try:
                hello = _hello(ofp, switch)
                break
            except (ConnectionRefusedError, ssl.SSLError, OSError):
                time.sleep(0.2)
        assert hello[:2] == b"\x04\x00", hello  # OpenFlow 1.3 OFPT_HELLO, over TLS
        for client in (stranger, None):  # a certificate nobody signed, or none at all
            try:
                got = _hello(ofp, client)
            except (ssl.SSLError, OSError):
                got = b""
            assert not got.startswith(b"\x04\x00"), client
        with socket.create_connection(("127.0.0.1", ofp), timeout=5) as plain:
            plain.sendall(b"\x04\x00\x00\x08\x00\x00\x00\x01")  # plain OpenFlow: no answer
            plain.settimeout(2)
            try:
                answer = plain.recv(8)
            except (TimeoutError, ConnectionResetError):
                answer = b""
            assert not answer.startswith(b"\x04\x00")
    finally:
        proc.terminate()
        proc.wait(20)


def test_tls_keys_must_come_in_pairs_and_exist(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"controller:\n  ofp_tls_key: {tmp_path}/k.pem\n")
    with pytest.raises(config.ConfigError, match="goes with controller.ofp_tls_cert"):
        config.load(cfg)
    cfg.write_text(f"controller:\n  ofp_tls_key: {tmp_path}/k.pem\n"
                   f"  ofp_tls_cert: {tmp_path}/c.pem\n")
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(cfg)
