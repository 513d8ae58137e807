"""The machine's own IP addresses, for the URLs a server bound to every interface prints.

Read with the C library's ``getifaddrs`` (Linux, macOS, the BSDs) through ctypes: every IPv4
and IPv6 address of every interface that is up, with no dependency and no subprocess. The
addresses are only read, never connected to.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import socket
import sys

log = logging.getLogger(__name__)

IFF_UP = 0x1
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _IfAddrs(ctypes.Structure):
    """``struct ifaddrs`` (the same layout on Linux and the BSDs)."""


_IfAddrs._fields_ = [
    ("ifa_next", ctypes.POINTER(_IfAddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.c_void_p),
    ("ifa_netmask", ctypes.c_void_p),
    ("ifa_ifu", ctypes.c_void_p),
    ("ifa_data", ctypes.c_void_p),
]


def _address(sockaddr: int) -> IPAddress | None:
    """The IP address in a ``struct sockaddr`` at ``sockaddr``, or None for another family."""
    head = ctypes.string_at(sockaddr, 2)
    # a BSD sockaddr starts with its length byte, then a one-byte family; Linux's with a 16-bit family
    bsd = sys.platform == "darwin" or "bsd" in sys.platform
    family = head[1] if bsd else int.from_bytes(head, sys.byteorder)
    if family == socket.AF_INET:  # sockaddr_in: family, port, then the address
        return ipaddress.IPv4Address(ctypes.string_at(sockaddr + 4, 4))
    if family == socket.AF_INET6:  # sockaddr_in6: family, port, flow info, then the address
        return ipaddress.IPv6Address(ctypes.string_at(sockaddr + 8, 16))
    return None


def interface_addresses() -> list[tuple[str, IPAddress]]:
    """(interface, address) for every IPv4 and IPv6 address of the interfaces that are up, in
    the system's order; empty where ``getifaddrs`` does not exist (Windows) or fails."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        getifaddrs, freeifaddrs = libc.getifaddrs, libc.freeifaddrs
    except (OSError, AttributeError, TypeError):
        log.debug("getifaddrs is not available here: no interface addresses")
        return []
    getifaddrs.argtypes = [ctypes.POINTER(ctypes.POINTER(_IfAddrs))]
    freeifaddrs.argtypes = [ctypes.POINTER(_IfAddrs)]
    head = ctypes.POINTER(_IfAddrs)()
    if getifaddrs(ctypes.byref(head)) != 0:
        log.debug("getifaddrs failed: errno %d", ctypes.get_errno())
        return []
    found = []
    try:
        node = head
        while node:
            entry = node.contents
            if entry.ifa_addr and entry.ifa_flags & IFF_UP:
                address = _address(entry.ifa_addr)
                if address is not None:
                    found.append((entry.ifa_name.decode(errors="replace"), address))
            node = entry.ifa_next
    finally:
        freeifaddrs(head)
    return found


def reachable_hosts(host: str, dual_stack: bool = False) -> list[str]:
    """The addresses a server bound to ``host`` answers at, loopback first.

    ``0.0.0.0`` (or ``""``): 127.0.0.1 and every interface's IPv4 address; ``::``: ::1 and every
    IPv6 address, and the IPv4 ones too on a ``dual_stack`` socket. IPv6 link-local addresses
    are left out (a browser cannot take their zone). Any other ``host`` is the one address.
    """
    if host in ("", "0.0.0.0"):
        versions = {4}
    elif host == "::":
        versions = {4, 6} if dual_stack else {6}
    else:
        return [host]
    loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    others = [a for _, a in interface_addresses() if not a.is_loopback and not (a.version == 6 and a.is_link_local)]
    return [str(a) for a in dict.fromkeys(loopback + others) if a.version in versions]
