"""``ledger serve`` in the foreground: the listen address checked first, the server and the projections
started, one ready line, the lost data keys logged, and a graceful stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import errno
import gc
import logging
import signal
import socket
import threading
from typing import TYPE_CHECKING

from ledger.application.verification import keyless_registrations
from ledger.bootstrap import key_jobs, open_ledger, open_projector, start_projections
from ledger.policy import ConfigError
from ledger.server import tracing
from ledger.server.app import create_server

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.config import Settings

log = logging.getLogger("ledger")


def _log_keyless(app: LedgerApplication, named: int = 100) -> None:
    """Log, once at start, the registrations whose data key is lost: position and subscriber id, the first
    ``named`` one by one, then how many (never personal data)."""
    try:
        keyless = keyless_registrations(app.reader, app.vault.store)
    except Exception:
        log.warning("could not look for registrations without a data key", exc_info=True)
        return
    for position, sid in keyless[:named]:
        log.error(
            "the registration at position %d (subscriber %s) has neither a stored data key nor a tombstone: "
            "its personal data can no longer be opened",
            position,
            sid,
        )
    if keyless:
        log.error(
            "%d registration(s) without a data key; VerifyIntegrity and scripts.verify_ledger list them all",
            len(keyless),
        )


def check_listen_address(listen: str) -> None:
    """Refuse, in one line, an address this host cannot listen on (in use, or not an address of it).

    gRPC reports a failed bind only as a log line of its own, so the address is tried first.
    """
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port_text.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT (for example 127.0.0.1:50051), got {listen!r}")
    if int(port_text) == 0:
        return
    try:
        infos = socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            hint = "the port is in use (stop the other server or pass another --listen HOST:PORT)"
        else:
            hint = f"{e.strerror or e} (pass --listen with an address of this host, for example 127.0.0.1:50051)"
        raise OSError(f"cannot listen on {listen}: {hint}") from e


def serve(settings: Settings) -> int:
    """Run in the foreground until SIGTERM or Ctrl-C, then finish in-flight calls and return 0."""
    if not settings.reuse_port:
        check_listen_address(settings.listen)
    # SIGTERM (a supervisor's stop) is in place before start-up and honoured once the ledger has opened;
    # Ctrl-C during start-up still interrupts it.
    stop = threading.Event()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: stop.set())}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # held by ``--workers`` until now
    # Before the server is built (its interceptors depend on it); in this process, so each of the
    # ``--workers`` processes has its own provider and exporter.
    spans = tracing.start()
    app = open_ledger(settings)
    try:
        projector = open_projector(settings, app)
        server, port = create_server(settings, app, projector if settings.run_projections else None)
    except BaseException:
        app.close()
        app.vault.store.close()
        tracing.stop(spans)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    projection_threads = (
        start_projections(settings, projector, key_jobs(settings, app), stop) if settings.run_projections else []
    )
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    # What start-up made (modules, descriptors, caches) lives as long as the process: the collector's full
    # passes need not walk it again and again while calls allocate their rows and messages.
    gc.collect()
    gc.freeze()
    host = settings.listen.rsplit(":", 1)[0]
    security = (
        f"tokens from {settings.auth_file}"
        if settings.auth_file
        else "no credentials configured: accepting loopback callers only"
    )
    transport = ("mutual TLS" if settings.tls_client_ca else "TLS") if settings.tls_cert else "plaintext"
    http = ""
    if server.http is not None and settings.http_listen:
        http = f", HTTP API on {settings.http_listen.rsplit(':', 1)[0]}:{server.http.port}"
    if server.metrics is not None and settings.metrics_listen:
        http += f", metrics on {settings.metrics_listen.rsplit(':', 1)[0]}:{server.metrics.port}/metrics"
    log.info(
        "ledger ready on %s:%d%s (%s, %s; store %s; projections %s; quarantine %d days)",
        host,
        port,
        http,
        transport,
        security,
        settings.store.sqlite_path or settings.store.kind,
        "in this process" if settings.run_projections else "in a separate process",
        settings.policy.quarantine_days,
    )
    # Beside the serving server: the scan reads every registration, which takes a while on a large ledger.
    threading.Thread(target=_log_keyless, args=(app,), name="key-check", daemon=True).start()
    try:
        # Woken twice a second: a signal the kernel delivers to another of the process's threads runs its
        # Python handler only when the main thread runs, and an untimed wait would never let it.
        while not stop.wait(0.5):
            pass
    finally:
        server.enter_graceful_shutdown()
        server.stop(settings.grace_seconds).wait()
        for thread in projection_threads:
            thread.join(timeout=settings.grace_seconds)
        projector.close()
        app.close()
        app.vault.store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        tracing.stop(spans)  # after the last call ended: its spans are exported too
        log.info("ledger stopped")
    return 0
