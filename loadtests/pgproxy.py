"""A TCP proxy in front of Postgres that can lose a COMMIT's answer: the statement reaches the
server and commits, then the connection drops before the client hears back. That is the
ambiguous commit a real network or a failover produces ("server closed the connection
unexpectedly"), made to happen on demand for the fault suite.

Only the client's side is parsed (the startup exchange, then typed messages) to spot a simple
query that starts with COMMIT, which is how psycopg 3 commits; the server's side is copied.
"""

import contextlib
import socket
import struct
import threading
import time

from port_for import get_port

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class PgProxy:
    """``PgProxy(upstream_port).start()``; clients connect to ``.port``. While ``cut_every`` is
    N > 0, every Nth COMMIT is delivered and its answer lost."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.host, self.port = host, get_port(None)
        self.cut_every = 0
        self.commits = self.cuts = 0
        self._lock = threading.Lock()
        self._listener = None

    def start(self) -> "PgProxy":
        self._listener = socket.create_server((self.host, self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            muted = threading.Event()  # set: the server's answers are dropped, not relayed
            for target, args in (
                (self._client_to_server, (client, server, muted)),
                (self._server_to_client, (server, client, muted)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    @staticmethod
    def _server_to_client(server: socket.socket, client: socket.socket, muted) -> None:
        with contextlib.suppress(OSError):
            while (chunk := server.recv(65536)) and not muted.is_set():
                client.sendall(chunk)

    def _should_cut(self) -> bool:
        with self._lock:
            self.commits += 1
            cut = self.cut_every > 0 and self.commits % self.cut_every == 0
            self.cuts += cut
            return cut

    def _client_to_server(self, client: socket.socket, server: socket.socket, muted) -> None:
        try:
            while True:  # startup: untyped messages, until the StartupMessage itself
                head = _read_exact(client, 8)
                length, code = struct.unpack("!II", head)
                server.sendall(head + _read_exact(client, length - 8))
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
            while True:
                head = _read_exact(client, 5)
                kind, length = head[:1], struct.unpack("!I", head[1:])[0]
                body = _read_exact(client, length - 4)
                commit = kind == b"Q" and body.lstrip()[:6].upper() == b"COMMIT"
                if commit and self._should_cut():
                    muted.set()
                    server.sendall(head + body)
                    time.sleep(0.05)  # the server commits; its answer never comes back
                    break
                server.sendall(head + body)
        except (OSError, ConnectionError):
            pass
        for s in (client, server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
