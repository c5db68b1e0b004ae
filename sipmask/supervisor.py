"""`sipmask run --workers N`: one supervising process and N SIP workers on one node.

Theory of operation:

- The supervisor binds every `[sip] listen` socket once (port 0 resolves here, once for all)
  and makes the `Mailbox` of local sockets the workers hand datagrams over with; then it forks
  the workers. Each worker inherits the sockets and runs `serve(worker=...)`: the call engine
  and the SIP endpoint only, reading the *shared* sockets, with Call-IDs routed to their owner
  (`transport/workers.py`). Sessions live in Redis (the config refuses several workers on the
  memory store), so every worker sees every binding.
- The supervisor then runs `serve(children=...)`: the API, metrics and store housekeeping,
  once per node. Each worker writes its counters to a file every second; the supervisor's
  `/metrics` sums them. It prints `ready` when every worker has reported ready. SIGTERM and SIGINT
  are passed on to the workers (each drains its own calls); SIGHUP too, and the supervisor
  applies the file's pools. When every worker has exited the supervisor stops; if a worker
  dies unexpectedly, the others are stopped too and the exit status is 1 (a process manager
  restarts the node, rather than a half-node limping on).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from .config import Config
from .node import Children, WorkerSetup
from .server import serve
from .sip.events import Address
from .transport import runtime
from .transport.endpoint import ListenSpec
from .transport.workers import Mailbox

log = logging.getLogger("sipmask.supervisor")


def bind_shared(specs: tuple[ListenSpec, ...]) -> list[socket.socket]:
    """One bound socket per listen spec (listening, for TCP and TLS), made to be inherited."""
    sockets = []
    try:
        for spec in specs:
            family = socket.AF_INET6 if ":" in spec.bind.host else socket.AF_INET
            kind = socket.SOCK_DGRAM if spec.transport == "udp" else socket.SOCK_STREAM
            sock = socket.socket(family, kind)
            sockets.append(sock)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((spec.bind.host, spec.bind.port))
            if kind == socket.SOCK_STREAM:
                sock.listen(1024)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def run_workers(
    config: Config,
    path: str | None,
    workers: int,
    *,
    listening: Callable[[str, Address], None],
    ready: Callable[[], None],
) -> int:
    """Bind, fork `workers` SIP workers, supervise them; the exit status of the node."""
    specs = config.sip.listen_specs()
    sockets = bind_shared(specs)
    for spec, sock in zip(specs, sockets, strict=True):
        name = sock.getsockname()
        # `listening` prints it (one line per start-up event); the detail is for debugging.
        log.debug("SIP listening on %s:%s:%d (shared by %d workers)", spec.transport, name[0],
                  name[1], workers)
        listening(spec.transport, Address(name[0], name[1]))
    mailbox = Mailbox(workers)
    stats_dir = Path(tempfile.mkdtemp(prefix="sipmask-workers-"))
    ready_r, ready_w = os.pipe()
    pids = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                os.close(ready_r)
                setup = WorkerSetup(index, sockets, mailbox, ready_w, stats_dir)
                runtime.run(serve(config, config_path=path, worker=setup))
            except BaseException:
                log.exception("worker %d failed", index)
                code = 1
            finally:
                logging.shutdown()
            os._exit(code)
        pids.append(pid)
    os.close(ready_w)
    for sock in sockets:
        sock.close()  # the workers hold them now
    children = Children(pids, ready_r, stats_dir)
    try:
        runtime.run(serve(config, config_path=path, ready=ready, listening=listening,
                          children=children))
    finally:
        children.forward(signal.SIGTERM)
        for pid in pids:
            if pid not in children.exit_codes:
                with contextlib.suppress(ChildProcessError):
                    _, status = os.waitpid(pid, 0)
                    children.exit_codes[pid] = os.waitstatus_to_exitcode(status)
        os.close(ready_r)
        mailbox.close()
        shutil.rmtree(stats_dir, ignore_errors=True)
    if children.failed or any(children.exit_codes.values()):
        return 1
    return 0
