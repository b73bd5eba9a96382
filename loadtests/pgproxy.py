"""A TCP proxy in front of Postgres that can lose a commit: deliver it and drop the answer (the
transaction is committed, the client hears "server closed the connection unexpectedly"), or
drop the statement itself (rolled back), and then, optionally, refuse new connections (Postgres
unreachable when the client asks what happened). That is the ambiguous commit a network or a
failover produces, on demand, for the fault suite and the phantom-order tests.

A commit is a COMMIT, which is how psycopg 3 ends a transaction, or the INSERT of an order,
which the web sends in autocommit (orders.services.order_reserve: one statement, its own
transaction). Only the client's side is parsed (the startup exchange, then typed messages) to
spot such a simple query; the server's side is copied.
"""

import contextlib
import socket
import struct
import threading

from port_for import get_port

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
COMMITS = (b"COMMIT", b'INSERT INTO "ORDERS_ORDER"')  # upper case: compared with .upper()


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class PgProxy:
    """``PgProxy(upstream_port).start()``; clients connect to ``.port``.

    ``arm("after")`` loses the next commit's answer, ``arm("before")`` the commit itself;
    ``then_refuse`` also closes every new connection from then on, until ``refuse`` is cleared.
    While ``cut_every`` is N > 0, every Nth commit loses its answer (a storm's worth of cuts).
    """

    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.host, self.port = host, get_port(None)
        self.cut_every = 0
        self.commits = self.cuts = 0
        self.refuse = threading.Event()
        self._armed: str | None = None
        self._then_refuse = False
        self._lock = threading.Lock()
        self._listener = None

    def start(self) -> "PgProxy":
        self._listener = socket.create_server((self.host, self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def arm(self, mode: str, *, then_refuse: bool = False) -> None:
        assert mode in ("after", "before"), mode
        with self._lock:
            self._armed, self._then_refuse = mode, then_refuse

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse.is_set():
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            muted = threading.Event()  # set: the server's answers are dropped, not relayed
            answered = threading.Event()  # the server answered while muted
            for target, args in (
                (self._client_to_server, (client, server, muted, answered)),
                (self._server_to_client, (server, client, muted, answered)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    @staticmethod
    def _server_to_client(server, client, muted, answered) -> None:
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                if muted.is_set():
                    answered.set()
                    return
                client.sendall(chunk)

    def _cut(self) -> str | None:
        """What to do with this commit: None (pass it), "after" or "before"."""
        with self._lock:
            self.commits += 1
            mode, self._armed = self._armed, None
            if mode is None and self.cut_every > 0 and self.commits % self.cut_every == 0:
                mode = "after"
            if mode is not None:
                self.cuts += 1
                if self._then_refuse:
                    self.refuse.set()
                    self._then_refuse = False
            return mode

    def _client_to_server(self, client, server, muted, answered) -> None:
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
                commit = kind == b"Q" and body.lstrip().upper().startswith(COMMITS)
                mode = self._cut() if commit else None
                if mode == "after":
                    muted.set()
                    server.sendall(head + body)
                    answered.wait(5)  # Postgres has committed; its answer goes nowhere
                if mode is not None:
                    break
                server.sendall(head + body)
        except (OSError, ConnectionError):
            pass
        for s in (client, server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
