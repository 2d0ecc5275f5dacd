"""A throwaway nginx in front of test servers: Debian's ``nginx``, a config in a temp folder.

Usage::

    from tests.services.nginx import Nginx, nginx_missing
    reason = nginx_missing()             # None, or why nginx cannot be had here
    with Nginx.start(Path("/tmp/ngx"), ["127.0.0.1:8001"]) as proxy:
        proxy.base                       # http://127.0.0.1:PORT, balancing to the upstreams

When the binary is missing and this is a Debian machine run as root, ``nginx-light`` is
installed with apt-get. The config is the one docs/deploy.md shows (WebSocket upgrade, long
timeouts, no buffering), on 127.0.0.1, with every file nginx writes in the temp folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Nginx", "nginx_binary", "nginx_missing"]

CONFIG = """
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream vobiz_stream {{
        least_conn;
{servers}
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://vobiz_stream;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_read_timeout 4h;
            proxy_send_timeout 4h;
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """nginx's path, installing Debian's ``nginx-light`` first where that is possible."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is not None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["install", "-y", "-q", "nginx-light"], ["update", "-q"]):
        subprocess.call(["apt-get", *args], env=env, stdout=subprocess.DEVNULL)
        found = shutil.which("nginx", path="/usr/sbin:/usr/bin")
        if found is not None:
            return found
    subprocess.call(["apt-get", "install", "-y", "-q", "nginx-light"], env=env)
    return shutil.which("nginx", path="/usr/sbin:/usr/bin")


def nginx_missing() -> str | None:
    if nginx_binary() is None:
        return "nginx is not installed and cannot be (apt-get install nginx-light as root)"
    return None


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    @contextmanager
    def start(cls, folder: Path, upstreams: Sequence[str]) -> Iterator[Nginx]:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError(nginx_missing())
        folder.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        servers = "\n".join(f"        server {upstream} max_fails=0;" for upstream in upstreams)
        config = folder / "nginx.conf"
        config.write_text(CONFIG.format(folder=folder, servers=servers, port=port))
        process = subprocess.Popen(
            [binary, "-c", str(config), "-p", str(folder)], stderr=subprocess.PIPE
        )
        try:
            _wait_listening(port, process)
            yield cls(process, port, folder)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.stderr.read() if process.stderr else ''!r}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")
