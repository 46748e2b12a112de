"""The engine's own DNS resolver: the system's configuration read as glibc reads it,
queries on non-blocking sockets inside the race loop, answers cached for their TTL.

- `_wire`: DNS messages, built and parsed (A, AAAA, CNAME, SOA, HTTPS/SVCB; EDNS0).
- `_config`: /etc/hosts, resolv.conf, nsswitch.conf, host.conf, gai.conf and the
  environment, read as glibc 2.36 reads them, or the reason they cannot be reproduced.
- `_sort`: RFC 6724 destination address selection, and NAT64 (RFC 6052, RFC 7050).
"""
