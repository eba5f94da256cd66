"""Small pieces of other projects that their public APIs do not offer, each with its licence.

- :mod:`.httpx_transport`: httpx's ``HTTPTransport`` request step over an ``httpcore``
  connection pool the caller builds (httpx 0.28.1, BSD-3-Clause, ``LICENSE-httpx.md``). httpx
  offers no public way to give its transport a network backend; httpcore's pool takes one
  (``network_backend=``), and the sync client's backend bounds every socket operation by the
  request's deadline. ``tests/unit/test_vendored_transport.py`` pins what this relies on.
"""
