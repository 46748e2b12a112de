"""Adapters that give existing HTTP clients the connect-by-name engine: one module per
client (``urllib3``, ``requests``, ``httpx``), each importing its client only when used."""
