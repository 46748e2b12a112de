"""The lab's DNS server (``connectbyname.testing.dnsserver``, same arguments), except
that each answer keeps its records in the order the script gives them.

dnspython shuffles the records of an RRset when it writes a message, as many servers
rotate them; the scale benchmark needs its N dead addresses before the good one for
every client, and the engine does not sort a family's addresses (glibc does, RFC 6724).
``bench/run.py`` starts this in the scale benchmark's namespace only.
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    import dns.rdataset

    from connectbyname.testing import dnsserver

    shuffled = dns.rdataset.Rdataset.to_wire

    def in_order(self: Any, *args: Any, **kwargs: Any) -> int:
        kwargs["want_shuffle"] = False
        result: int = shuffled(self, *args, **kwargs)
        return result

    dns.rdataset.Rdataset.to_wire = in_order  # type: ignore[method-assign]
    dnsserver.main()


if __name__ == "__main__":
    main()
