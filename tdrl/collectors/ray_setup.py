"""Finding Ray: import it, check a cluster address, connect (or start a local instance).

Examples:
    >>> _host_port("ray://10.0.0.5:10001"), _host_port("auto")
    (('10.0.0.5', 10001), None)
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tdrl.collectors.base import CollectorError

__all__ = ["check_ray_address", "import_ray", "init_ray"]

INSTALL_HINT = "pip install 'tdrl[ray]'  (or: pip install ray)"


def import_ray() -> Any:
    """Import ray, or raise :class:`CollectorError` with the install command.

    Examples:
        >>> try:
        ...     ray = import_ray()
        ... except CollectorError as err:
        ...     assert "pip install" in str(err)
    """
    try:
        import ray
    except ImportError:
        raise CollectorError(
            f"distributed collection needs Ray; install it with: {INSTALL_HINT}"
        ) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``"ray://host:port"`` / ``"host:port"`` -> ``(host, port)``; None when there is no port."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


# HTTP/2 connection preface + an empty SETTINGS frame: a gRPC server (Ray's GCS, the Ray
# Client server) answers with its own SETTINGS frame (type 4) at once.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`CollectorError` within ``timeout`` s when no Ray cluster answers at ``address``.

    ``ray.init(address=...)`` retries an unreachable or foreign address for
    minutes without returning to Python (so signals wait too). This opens a
    TCP connection and sends the greeting every gRPC server (Ray's GCS, the
    Ray Client server) answers at once: a refused connection, silence or a
    reply that is not gRPC's fail here. ``"auto"`` (and an address without a
    port) is left to Ray, which fails fast when it finds no cluster; with
    ``RAY_USE_TLS`` set only the TCP connection is checked.

    Examples:
        >>> import socket
        >>> s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        >>> check_ray_address(f"127.0.0.1:{port}")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tdrl.collectors.base.CollectorError: cannot reach a Ray cluster at 127.0.0.1:...: ...
        >>> check_ray_address("auto")
    """
    import socket

    hp = _host_port(address)
    if hp is None:
        return
    hint = "start one there with `ray start --head`, or check the address and port"
    try:
        with socket.create_connection(hp, timeout=timeout) as conn:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return
            conn.sendall(_H2_PREFACE)
            reply = b""
            while len(reply) < 9:
                chunk = conn.recv(9 - len(reply))
                if not chunk:
                    break
                reply += chunk
    except TimeoutError:
        raise CollectorError(
            f"no Ray cluster answers at {address}: a server listens there but said nothing "
            f"in {timeout:g} s (not Ray's GCS port?); {hint}"
        ) from None
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise CollectorError(
            f"cannot reach a Ray cluster at {address}: {reason} (after at most {timeout:g} s); "
            f"{hint}"
        ) from None
    if len(reply) < 9 or reply[3] != 4:  # not an HTTP/2 SETTINGS frame
        raise CollectorError(
            f"no Ray cluster answers at {address}: the server there does not speak gRPC "
            f"(not Ray's GCS port?); {hint}"
        )


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to Ray: reuse a running session, join ``address``, or start a local instance.

    A local instance gets ``num_cpus`` CPUs (default: this machine's count).
    Returns ``True`` when this call started or joined Ray (the caller then
    owns the session and should ``ray.shutdown()`` it). An ``address`` where
    nothing listens raises :class:`CollectorError` within seconds
    (:func:`check_ray_address`).

    Examples:
        >>> init_ray  # doctest: +ELLIPSIS
        <function init_ray at ...>
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        check_ray_address(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    return True
