"""API answers read whole under a size cap that counts decompressed bytes.

Neither a huge body nor a compression bomb can exhaust memory: the body is read raw and
decompressed here, and reading stops at the cap. Both clients and both transports use it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from rivya_provider.client.errors import ResponseTooLargeError, UnexpectedResponseError


class Decoder:
    """Decompress gzip/deflate under a cap on the decompressed size."""

    def __init__(self, encoding: str, cap: int) -> None:
        self._cap = cap
        self._size = 0
        self._zlib: Any = None
        name = encoding.strip().lower()
        if name in {"gzip", "x-gzip", "deflate"}:
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)
            self._raw_deflate = name == "deflate"
        elif name not in {"", "identity"}:
            raise UnexpectedResponseError(f"the answer uses an unsupported encoding {name!r}")

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            self._grow(len(data))
            return data
        out = bytearray()
        try:
            while data:
                out += self._zlib.decompress(data, self._cap - self._size - len(out) + 1)
                if self._size + len(out) > self._cap:
                    self._grow(len(out))
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            # "deflate" is sent zlib-wrapped or raw, depending on the server.
            if self._raw_deflate and self._size == 0 and not out:
                self._zlib, self._raw_deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                return self.feed(data)
            raise UnexpectedResponseError(f"the answer's compression is broken: {exc}") from None
        self._grow(len(out))
        return bytes(out)

    def _grow(self, count: int) -> None:
        self._size += count
        if self._size > self._cap:
            raise ResponseTooLargeError(f"the answer exceeds the cap of {self._cap} bytes")


def body_decoder(headers: Mapping[str, str], cap: int) -> Decoder:
    """The decoder of an answer with these headers (httpx's or aiohttp's), under ``cap`` bytes.

    :raises ResponseTooLargeError: when the answer announces more than ``cap`` bytes.
    :raises UnexpectedResponseError: for an encoding it cannot decode.
    """
    declared = headers.get("content-length", "")
    encoding = headers.get("content-encoding", "")
    if declared.isdigit() and int(declared) > cap and encoding in {"", "identity"}:
        raise ResponseTooLargeError(f"the answer announces {declared} bytes; the cap is {cap}")
    return Decoder(encoding, cap)


#: Headers that describe the body as sent, not as decoded.
_BODY = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


class ReadBody(httpx.ByteStream):
    """The body of an answer read whole and decoded under the cap, kept as it is.

    httpx's ``Response.read()`` would pass it through its decoders once more (nothing left to
    decode): a fifth of a status poll's CPU. :func:`body` takes the bytes from here instead.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.data = data


def read_response(
    status: int,
    raw_headers: Iterable[tuple[bytes, bytes]],
    chunks: Iterable[bytes],
    *,
    request: httpx.Request,
    extensions: dict[str, Any],
) -> httpx.Response:
    """An answer whose body ``chunks`` were decoded by :func:`body_decoder`: its bytes are in
    :func:`body`, and ``read()`` gives them too."""
    data = b"".join(chunks)
    # Raw bytes: no decoding of every header into str and back.
    headers = [(key, value) for key, value in raw_headers if key.lower() not in _BODY]
    headers.append((b"Content-Length", str(len(data)).encode()))
    return httpx.Response(
        status, headers=headers, stream=ReadBody(data), request=request, extensions=extensions
    )


def body(response: httpx.Response) -> bytes:
    """The bytes of an answer this package read (or that a mock transport gave read)."""
    if isinstance(response.stream, ReadBody):
        return response.stream.data
    return response.read()


def _complete(response: httpx.Response, chunks: Iterable[bytes]) -> httpx.Response:
    return read_response(
        response.status_code,
        response.headers.raw,
        chunks,
        request=response.request,
        extensions=response.extensions,
    )


def _already_read(response: httpx.Response, cap: int) -> bool:
    """Tell whether a transport handed over a body already in memory (read under the cap)."""
    if isinstance(response.stream, ReadBody):
        return True
    try:
        size = len(response.content)
    except httpx.ResponseNotRead:
        return False
    if size > cap:
        raise ResponseTooLargeError(f"the answer exceeds the cap of {cap} bytes")
    return True


def read_capped(response: httpx.Response, cap: int) -> httpx.Response:
    """Read a streamed answer into a plain response, failing past ``cap`` decompressed bytes."""
    if _already_read(response, cap):
        return response
    try:
        decoder = body_decoder(response.headers, cap)
        chunks = [decoder.feed(raw) for raw in response.iter_raw()]
        return _complete(response, chunks)
    finally:
        response.close()


async def aread_capped(response: httpx.Response, cap: int) -> httpx.Response:
    """The async twin of :func:`read_capped`."""
    if _already_read(response, cap):
        return response
    try:
        decoder = body_decoder(response.headers, cap)
        chunks = [decoder.feed(raw) async for raw in response.aiter_raw()]
        return _complete(response, chunks)
    finally:
        await response.aclose()
