"""The HTTP(S) shell around ``App``: threads, keep-alive, TLS handshakes off the accept loop, fast stop."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ontap_sim.app import App, Broken, Drop, HttpRequest, Reply

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0
MAX_BODY = 16 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    wbufsize = 64 * 1024  # headers and body leave in one segment, flushed per request
    disable_nagle_algorithm = True
    server: SimServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = HttpRequest(self.command, self.path, headers, body, self._certificate_user())
        try:
            outcome = self.server.app.handle(request)
        except Exception:
            log.exception("simulator failed on %s %s", self.command, self.path)
            outcome = Reply(500, b"internal simulator error\n", "text/plain")
        if isinstance(outcome, Drop):
            self._drop(outcome)
            return
        if isinstance(outcome, Broken):
            self._break_off(outcome.reply)
            return
        self.send_response(outcome.status)
        self.send_header("Content-Type", outcome.content_type)
        self.send_header("Content-Length", str(len(outcome.body)))
        for name, value in outcome.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(outcome.body)

    def _certificate_user(self) -> str | None:
        """The common name of the client certificate TLS verified, if the client sent one."""
        if not isinstance(self.connection, ssl.SSLSocket):
            return None
        peer = self.connection.getpeercert()  # a dict only for a certificate that was verified
        for rdn in (peer or {}).get("subject", ()):
            for name, value in rdn:
                if name == "commonName":
                    return str(value)
        return None

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _serve

    def _drop(self, drop: Drop) -> None:
        if drop.hold:
            self.server.stopping.wait(drop.hold)
        self.close_connection = True
        if drop.reset:  # linger 0: close() sends RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _break_off(self, reply: Reply) -> None:
        """Announce a chunk longer than what follows, then close: the client's read breaks off mid-body."""
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        part = reply.body[: len(reply.body) // 2]
        self.wfile.write(b"%x\r\n" % len(reply.body) + part)
        self.wfile.flush()
        self.close_connection = True
        self.connection.close()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)


class SimServer(ThreadingHTTPServer):
    """One thread per connection; ``stop`` wakes held requests and idle keep-alive readers."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, tls: ssl.SSLContext | None) -> None:
        self.app = app
        self.tls = tls
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        connection = request
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(request, server_side=True)
            with self._open_lock:
                self._open.add(connection)
            super().finish_request(connection, client_address)
        except (ssl.SSLError, OSError) as exc:
            log.debug("connection from %s ended: %s", client_address, exc)
        finally:
            with self._open_lock:
                self._open.discard(connection)
            if connection is not request:
                connection.close()

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver calls this from inside its except block, so the exception is current
        log.debug("error while serving %s", client_address, exc_info=True)  # noqa: LOG014

    def serve(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="ontap-sim", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()


def tls_context(cert_file: str, key_file: str, client_ca: str | None = None) -> ssl.SSLContext:
    """Server TLS; with ``client_ca``, a handshake without a client certificate it issued fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context
