"""``brushwork serve``: the studio, a web page and JSON API, on this machine (loopback) or, with a token, others."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from brushwork.cli.common import add_device, int_range
from brushwork.errors import InputError
from brushwork.options import MAX_SIDE, MIN_SIDE

TOKEN_ENV = "BRUSHWORK_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="start the studio: a web page and JSON API to stylize photos, compare methods and use the camera",
        description="Serve the brushwork studio. It listens on loopback by default; to listen on another address, "
        f"give a token (--token or ${TOKEN_ENV}) that every request must carry.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument(
        "--port", type=int_range(0, 65535), default=8000, help="port (default: %(default)s; 0 = any free port)"
    )
    p.add_argument("--workers", type=int_range(1, 64), default=2, help="jobs run at once (default: %(default)s)")
    p.add_argument("--queue", type=int_range(1, 10_000), default=16, help="jobs that may wait (default: %(default)s)")
    p.add_argument("--token", help=f"secret every request must carry (default: ${TOKEN_ENV})")
    p.add_argument(
        "--memory-mb", type=int_range(64, 2**24), default=3072, help="working-memory budget of admitted jobs, estimated"
    )
    p.add_argument(
        "--max-size", type=int_range(MIN_SIDE, MAX_SIDE), default=2048, help="longest side of a result (default: 2048)"
    )
    p.add_argument("--max-upload-mb", type=int_range(1, 4096), default=25, help="largest upload in MB (default: 25)")
    p.add_argument(
        "--ttl",
        type=int_range(1, 10**8),
        default=3600,
        help="seconds before uploads and results are deleted (default: 3600)",
    )
    add_device(p)
    p.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(host: str, port: int) -> None:
    """InputError (one line) unless ``host`` resolves to an address of this machine whose ``port`` is free: found
    before the server starts, instead of the web server's own multi-line failure."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"cannot serve on {host}: {getattr(exc, 'strerror', None) or exc}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise InputError(f"cannot serve on {host} port {port}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host) and token is None:
        raise InputError(
            f"refusing to serve on {args.host} without a token: give --token or set {TOKEN_ENV} (or use 127.0.0.1)"
        )
    if token is not None and len(token) < 8:
        raise InputError("the token must be at least 8 characters")
    check_address(args.host, args.port)
    try:
        import uvicorn

        from brushwork.web.app import Settings, create_app, setup_logging
    except ImportError as exc:
        raise InputError(
            f"the studio needs its extra: pip install 'brushwork[studio]' ({exc.name} is missing)"
        ) from None
    setup_logging()
    settings = Settings(
        token=token,
        workers=args.workers,
        max_queued=args.queue,
        memory_mb=args.memory_mb,
        max_size=args.max_size,
        max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        ttl=float(args.ttl),
        device=args.device,
        hosts=(args.host,),
        warm=True,
    )
    app = create_app(settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    query = "/?token=…" if token else "/"
    sys.stderr.write(f"brushwork studio on http://{shown}:{args.port}{query}  (Ctrl+C stops)\n")
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    return 0
