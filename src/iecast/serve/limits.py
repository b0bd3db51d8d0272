"""Hardening of the server's edges: the request body limit, the cap on requests handled at once and the
foreign-Origin check (ASGI wrappers), and uvicorn's h11 protocol with header/body deadlines and a
connection cap (`make_server`), plus binding the listening socket."""
from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
from typing import Any, Callable

from iecast.errors import IecastError
from iecast.serve.config import ServeConfig

try:  # comes with uvicorn (the `serve` extra); only the connection guards use it
    import h11
except ImportError:  # pragma: no cover - guarded_protocol needs uvicorn, which reports it
    h11 = None

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


# ----------------------------------------------------------------------------- request body limit

class BodySizeLimit:
    """ASGI wrapper: a request whose body exceeds `max_bytes` gets 413 and its body is discarded.

    A declared Content-Length is checked before anything is read; a chunked body is counted as
    it arrives. The rejected body is read and dropped (up to `drain_bytes`) so the client gets the
    413 instead of a connection reset.
    """

    def __init__(self, app: Callable, max_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(4 * max_bytes, 64 * 1024 * 1024)

    def _message(self) -> str:
        return f"upload too large: the limit is {self.max_bytes / 1048576:.1f} MB per request"

    async def _reject(self, receive: Callable, send: Callable, already: int, more_body: bool) -> None:
        drained = already
        while more_body and drained <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            more_body = message.get("more_body", False)
        body = ('{"error": "%s"}' % self._message()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if more_body:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(receive, send, 0, True)
            return
        received = 0
        rejected = False

        async def counted_receive() -> dict:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await self._reject(receive, send, received, message.get("more_body", False))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, counted_receive, guarded_send)


async def send_json_error(send: Callable, status: int, message: str) -> None:
    """Answer `{"error": message}` with `status` from ASGI middleware."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def is_local_name(host: str, allowed: tuple[str, ...] = ()) -> bool:
    """Whether a Host header's name (port stripped) is one this server may be reached under by the
    page: an IP address, localhost, this machine's name, or one in `allowed` (case-insensitive)."""
    name = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
    name = name.rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    machine = socket.gethostname().lower()
    names = {"localhost", machine, machine.split(".")[0] + ".local", *(a.lower() for a in allowed)}
    return name in names or name.endswith(".localhost")


class RequestGuard:
    """ASGI wrapper in front of the app.

    - A request that changes state (not GET/HEAD/OPTIONS) carrying an `Origin` header must come from
      the server's own page: the Origin equals `scheme://Host`, and Host is a local name (an IP
      address, localhost, this machine, `allowed_hosts`) so a DNS-rebound domain is refused too.
      Otherwise 403: another site open in the user's browser cannot submit jobs. Clients that send
      no Origin (curl, scripts) are not browsers acting for a web page and are let through.
    - At most `max_requests` requests are handled at once; more get 503, except `/api/health`.
    """

    def __init__(self, app: Callable, max_requests: int, allowed_hosts: tuple[str, ...] = (),
                 always: tuple[str, ...] = ("/api/health",)) -> None:
        self.app = app
        self.max_requests = max_requests
        self.allowed_hosts = allowed_hosts
        self.always = always
        self.active = 0

    def refusal(self, scope: dict) -> str | None:
        """Why a request from a browser page is refused (None: allowed)."""
        if scope["method"] in SAFE_METHODS:
            return None
        headers = {k: v for k, v in scope.get("headers") or []}
        origin = headers.get(b"origin")
        if origin is None:
            return None
        origin_text = origin.decode("latin-1").strip()
        host = headers.get(b"host", b"").decode("latin-1").strip()
        own = f"{scope.get('scheme', 'http')}://{host}"
        if not host or origin_text.lower() != own.lower() or not is_local_name(host, self.allowed_hosts):
            shown = origin_text[:80] if origin_text.isprintable() else "unprintable"
            return (f"cross-origin request refused (origin {shown}): jobs are accepted only from this server's "
                    f"own page or from clients that send no Origin header")
        return None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is not None:
            await send_json_error(send, 403, reason)
            return
        if scope["path"] in self.always:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            await send_json_error(send, 503, f"the server is handling {self.max_requests} requests already; "
                                             f"try again in a moment")
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                   b"content-length: %d\r\n\r\n%s")
_BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s")


def _raw_answer(template: bytes, message: str) -> bytes:
    """A whole HTTP response with body `{"error": message}`, written straight to the transport."""
    body = json.dumps({"error": message}).encode()
    return template % (len(body), body)


class _ServerConnections:
    """One server's deadlines and its connections in each phase, oldest first (dicts keep insertion
    order, so eviction is O(1))."""

    def __init__(self, config: ServeConfig) -> None:
        self.max_connections = config.max_connections
        self.timeouts = {"headers": config.header_timeout_s, "body": config.body_timeout_s}
        self.in_phase: dict[str, dict[Any, None]] = {"headers": {}, "body": {}}


class _GuardedConnection:
    """Mixin put before uvicorn's H11Protocol by `guarded_protocol`: tracks the connection's phase,
    closes it when the phase outlives its deadline, and makes room when too many are open."""

    server_connections: _ServerConnections  # shared by one server's connections; set by guarded_protocol
    phase: str | None = None
    deadline: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.enter("headers")
        if len(self.connections) > self.server_connections.max_connections:
            self.make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self.enter(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.follow()

    def follow(self) -> None:
        """Move to the phase h11's view of the client says we are in."""
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if self.transport.is_closing():
            phase = None
        if phase != self.phase:
            self.enter(phase)

    def enter(self, phase: str | None) -> None:
        in_phase = self.server_connections.in_phase
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.phase is not None:
            in_phase[self.phase].pop(self, None)
        self.phase = phase
        if phase is not None:
            in_phase[phase][self] = None
            self.deadline = self.loop.call_later(self.server_connections.timeouts[phase], self.expire)

    def expire(self) -> None:
        self.deadline = None
        phase = self.phase
        self.enter(None)
        if self.transport.is_closing():
            return
        answered = self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE)
        started = phase == "body" or bool(self.conn.trailing_data[0])
        if started and not answered:
            what = "headers" if phase == "headers" else "body"
            self.transport.write(_raw_answer(_TIMEOUT_ANSWER, f"the request's {what} did not arrive within "
                                                              f"{self.server_connections.timeouts[phase]:g} s"))
        self.transport.close()

    def make_room(self) -> None:
        """Close the oldest connection waiting for headers (else sending a body), else this one."""
        for phase in ("headers", "body"):
            oldest = next((c for c in self.server_connections.in_phase[phase] if c is not self), None)
            if oldest is not None:
                oldest.enter(None)
                oldest.transport.close()
                return
        self.enter(None)
        self.transport.write(_raw_answer(_BUSY_ANSWER, f"the server has {self.server_connections.max_connections} "
                                                       f"connections open; try again in a moment"))
        self.transport.close()


def guarded_protocol(config: ServeConfig) -> type:
    """uvicorn's h11 protocol with the deadlines and the connection cap that uvicorn lacks.

    uvicorn times out only idle kept-alive connections: a connection that never finishes its request
    headers (slowloris) or its body is kept forever, and its `limit_concurrency` counts such
    connections, so 64 of them make every request 503. Here each connection is in one phase:
    "headers" (waiting for a request: from connect or the previous answer; `header_timeout_s`),
    "body" (headers read, body arriving; `body_timeout_s`) or none (the app is answering). A phase
    that outlives its deadline closes the connection (408 when nothing was answered). When more than
    `max_connections` are open, the oldest connection waiting for headers is closed, else the oldest
    one sending a body, else the new one (503).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(_GuardedConnection, H11Protocol):
        server_connections = _ServerConnections(config)

    return GuardedH11Protocol


def make_server(app: Any, config: ServeConfig | None = None, log_level: str | None = None) -> Any:
    """The uvicorn server for `app` with the connection guards of `guarded_protocol`; run it with
    `server.run(sockets=[bind_socket(host, port)])`. `app.state.connections()` then gives its open connections."""
    import uvicorn

    config = config or getattr(app.state, "config", None) or ServeConfig()
    uvicorn_config = uvicorn.Config(
        app, http=guarded_protocol(config), ws="none", lifespan="on",
        limit_concurrency=None,  # counts half-open connections too; the guards above replace it
        timeout_keep_alive=config.keep_alive_s, h11_max_incomplete_event_size=16 * 1024,
        log_level=log_level or os.environ.get("IECAST_LOG_LEVEL", "warning"))
    server = uvicorn.Server(uvicorn_config)
    app.state.connections = lambda: server.server_state.connections
    return server


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: a free one), or a one-line `IecastError`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise IecastError(f"cannot listen on {host}: not a known address ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # a port bound by a socket that is not listening yet is caught here too
    except OSError as exc:
        sock.close()
        reason = "the port is in use; choose another with --port" if exc.errno == errno.EADDRINUSE \
            else exc.strerror or str(exc)
        raise IecastError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock
