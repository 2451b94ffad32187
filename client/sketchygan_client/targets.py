"""gRPC targets: one `url` naming one server or many replicas, balanced per call.

Accepted forms (gRPC's own name syntax): `host:port`, `[v6]:port`, `dns:///name:port` (every address the name
resolves to — a Kubernetes headless Service resolves to every ready pod), `ipv4:a:p,b:p`, `ipv6:[a]:p,[b]:p`.
The channel balances calls with `round_robin` over the resolved addresses (gRPC's default, `pick_first`, sends every
call to the first replica), skips addresses whose connection failed, reconnects to them within half a second of their
return, and re-resolves the name when a connection is lost; `resolve` is the same resolution done here, so `health`
can ask every replica on its own.
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from sketchygan_client.errors import InvalidInput

SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_options() -> list[tuple[str, object]]:
    """Channel arguments of every client channel: balanced per call, fast reconnects and re-resolution."""
    return [("grpc.service_config", SERVICE_CONFIG),
            ("grpc.lb_policy_name", "round_robin"),
            # reconnect quickly after a replica restarts (gRPC's default backoff grows to 120 s, longer than any
            # sensible deadline)
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
            # a lost connection re-resolves the name; let that happen at most once a second (default 30 s), so
            # pods added behind a headless Service are found within seconds of the next reconnect
            ("grpc.dns_min_time_between_resolutions_ms", 1000)]


@dataclass(frozen=True)
class Target:
    """A parsed target: its scheme and the (host, port) pairs it names before resolution."""

    text: str
    scheme: str  # "dns" (also plain host:port) or "ipv4" / "ipv6"
    endpoints: tuple[tuple[str, int], ...]


def _host_port(part: str, text: str) -> tuple[str, int]:
    host, sep, port = part.rpartition(":")
    if part.startswith("["):
        close = part.find("]")
        host, port = part[1:close], part[close + 2:] if part[close + 1:close + 2] == ":" else ""
        sep = ":" if port else ""
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"gRPC target {text!r}: {part!r} is not HOST:PORT (expected host:port, dns:///name:port, "
                           "ipv4:a:p,b:p or ipv6:[a]:p,[b]:p)")
    return host, int(port)


def parse(text: str) -> Target:
    """Check a target's syntax (InvalidInput with the accepted forms when it is wrong)."""
    if not text or any(c.isspace() for c in text):
        raise InvalidInput(f"gRPC target {text!r} is empty or has spaces")
    for scheme in ("ipv4", "ipv6"):
        if text.startswith(scheme + ":"):
            parts = text[len(scheme) + 1:].split(",")
            return Target(text, scheme, tuple(_host_port(p, text) for p in parts))
    if text.startswith("dns:"):
        rest = text[4:]
        if rest.startswith("//"):
            rest = rest[2:].partition("/")[2]  # dns://[authority]/name:port: the authority is a DNS server
        return Target(text, "dns", (_host_port(rest, text),))
    if "://" in text or text.startswith("unix:"):
        raise InvalidInput(f"gRPC target {text!r}: unsupported scheme (expected host:port, dns:///name:port, "
                           "ipv4:a:p,b:p or ipv6:[a]:p,[b]:p)")
    return Target(text, "dns", (_host_port(text, text),))


def is_literal(target: Target) -> bool:
    """Every endpoint is an IP address: nothing to look up again."""
    for host, _ in target.endpoints:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            return False
    return True


def resolve(text: str) -> list[str]:
    """The addresses (`ip:port`, `[ip6]:port`) the target names now, in a stable order, duplicates removed."""
    t = parse(text)
    out: list[str] = []
    for host, port in t.endpoints:
        if t.scheme != "dns":
            addrs = [host]
        else:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise InvalidInput(f"gRPC target {text!r}: cannot resolve {host!r} ({e})") from None
            addrs = [info[4][0] for info in infos]
        for a in addrs:
            item = f"[{a}]:{port}" if ":" in a else f"{a}:{port}"
            if item not in out:
                out.append(item)
    return out
