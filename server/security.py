"""Who may talk to the server, how much they may send, and which files it may touch.

On an explicit loopback address (127.0.0.1, ::1: an IP literal, never a name that could resolve
elsewhere, never the empty host that binds every interface) the server trusts the machine it runs
on, as the AWS Step Functions Local and DynamoDB Local tools do. Anywhere else a request must
prove itself: an AWS Signature Version 4 made with the configured access key, in the
Authorization header or presigned in the query string (so boto3, the AWS CLI and every SDK work
unchanged with their usual credentials), or a bearer token (for scripts and the console).
A loopback server still checks the Host header, so that a web page in the user's browser cannot
reach it through a rebound DNS name (the ``sync-`` prefix AWS SDKs put before the host for
StartSyncExecution and TestState is allowed), and refuses bodies over the size limit unread.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote

from statelang.language.errors import StatelangError

DEFAULT_MAX_BODY = 2 * 1024 * 1024   # a 1 MB definition JSON-escaped inside a request, with room
MAX_SKEW = timedelta(minutes=15)     # AWS refuses signatures older or newer than this
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # AWS's longest X-Amz-Expires, seconds
SYNC_PREFIX = "sync-"                # AWS SDKs' host prefix for StartSyncExecution and TestState
PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                  "X-Amz-Signature", "X-Amz-Security-Token")


class Denied(StatelangError):
    """A request the server refuses: ``status`` and the AWS error code to answer with."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def is_loopback_address(host: str) -> bool:
    """An IP literal of the loopback network: the only binding that needs no credentials."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=256)   # every request's Host header is checked; a few names recur
def is_loopback_name(name: str) -> bool:
    """A Host header naming this machine: ``localhost``, a loopback literal, either with the
    ``sync-`` prefix that AWS SDKs add for StartSyncExecution and TestState."""
    name = name.removeprefix(SYNC_PREFIX)
    return name == "localhost" or is_loopback_address(name)


def check_bind(host: str, access_key: str | None, secret_key: str | None, token: str | None) -> None:
    """Refuse to listen beyond an explicit loopback address without credentials: an open engine
    on a network would let anyone start executions that call the task handlers. An empty host
    binds every interface, and a name may resolve to anything; neither is loopback."""
    if (access_key is None) != (secret_key is None):
        raise ValueError("--access-key and --secret-key go together")
    if not is_loopback_address(host) and not (access_key or token):
        what = "every interface (an empty host)" if not host.strip("[]") else repr(host)
        raise ValueError(f"binding {what} needs --access-key/--secret-key or --token: only an explicit loopback "
                         "address (127.0.0.1, ::1) runs without credentials")


class Guard:
    """The checks every request passes before it reaches a handler."""

    def __init__(self, host: str = "127.0.0.1", access_key: str | None = None, secret_key: str | None = None,
                 token: str | None = None, max_body: int = DEFAULT_MAX_BODY, allowed_hosts: tuple = ()):
        check_bind(host, access_key, secret_key, token)
        self.loopback = is_loopback_address(host)
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token
        self.max_body = max_body
        self.allowed_hosts = {h.lower() for h in allowed_hosts}

    @property
    def authenticating(self) -> bool:
        return bool(self.access_key or self.token)

    def check_host(self, environ: dict) -> None:
        """DNS rebinding guard: a loopback server answers only to loopback names."""
        if not self.loopback:
            return
        host = (environ.get("HTTP_HOST") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name and not is_loopback_name(name) and name.removeprefix(SYNC_PREFIX) not in self.allowed_hosts:
            raise Denied(403, "AccessDeniedException", f"Host {host} is not served here")

    def body_length(self, environ: dict) -> int:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise Denied(400, "SerializationException", "Content-Length is not a number") from None
        if length < 0:
            raise Denied(400, "SerializationException", "Content-Length is negative")
        if length > self.max_body:
            raise Denied(413, "RequestEntityTooLargeException",
                         f"Request body of {length} bytes exceeds the limit of {self.max_body} bytes")
        return length

    def authenticate(self, environ: dict, body: bytes, now: datetime | None = None) -> None:
        """Pass a request that carries a valid signature or token; loopback without credentials
        configured passes everything."""
        if not self.authenticating:
            return
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        if auth.startswith("Bearer "):
            if self.token and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
                return
            raise Denied(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        presigned = not auth and "X-Amz-Signature=" in (environ.get("QUERY_STRING") or "")
        if auth.startswith("AWS4-HMAC-SHA256 ") or presigned:
            if not self.access_key:
                raise Denied(403, "UnrecognizedClientException", "Signed requests are not accepted here.")
            verify_sigv4(environ, body, self.access_key, self.secret_key or "", now)
            return
        raise Denied(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def _canonical_query(query: str, leave_out: str = "") -> str:
    pairs = []
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        if unquote(k) == leave_out:
            continue
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


# The non-string members a presigned request can carry: botocore writes them into the query as
# str() does (5, True), and they are read back as the JSON the body would have held.
QUERY_INTEGERS = frozenset({"maxResults", "Limit"})
QUERY_BOOLEANS = frozenset({"includeExecutionData", "reverseOrder", "publish", "revealSecrets", "Force"})


def query_members(query: str) -> dict[str, str | int | bool]:
    """The members of a presigned request, which SDKs move from the body into the query string
    (the signature's own parameters left out). A value that is not of its member's type stays a
    string, for the operation's validation to name."""
    out: dict[str, str | int | bool] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in PRESIGN_PARAMS:
            continue
        if key in QUERY_INTEGERS and value.lstrip("-").isdigit():
            out[key] = int(value)
        elif key in QUERY_BOOLEANS and value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Signature:
    """The parts of a SigV4 signature, from the Authorization header or a presigned query."""

    key_id: str
    date: str
    region: str
    service: str
    terminal: str
    signed: list[str]
    signature: str
    amz_date: str
    expires: int | None   # seconds a presigned request stays valid; None for the header form


def _read_signature(environ: dict) -> Signature:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        if auth:
            fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
            credential, signed, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
            amz_date, expires = environ.get("HTTP_X_AMZ_DATE") or "", None
        else:
            query = dict(parse_qsl(environ.get("QUERY_STRING") or "", keep_blank_values=True))
            if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
                raise Denied(403, "IncompleteSignatureException", "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
            credential, signed = query["X-Amz-Credential"], query["X-Amz-SignedHeaders"]
            signature, amz_date = query["X-Amz-Signature"], query.get("X-Amz-Date") or ""
            expires = int(query["X-Amz-Expires"])
        key_id, date, region, service, terminal = credential.split("/")
    except (KeyError, ValueError):
        where = "Authorization header" if auth else "presigned query string"
        raise Denied(403, "IncompleteSignatureException", f"The {where} is malformed") from None
    if expires is not None and not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise Denied(403, "AuthorizationQueryParametersError",
                     f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds")
    return Signature(key_id, date, region, service, terminal, signed.split(";"), signature, amz_date, expires)


def _header(environ: dict, name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    return _hmac(_hmac(_hmac(key, region), service), "aws4_request")


def verify_sigv4(environ: dict, body: bytes, access_key: str, secret_key: str, now: datetime | None = None) -> None:
    """Recompute the AWS Signature Version 4 of a request, header form or presigned (query
    string) form, and compare.

    The region and service come from the credential scope the client chose: the server plays
    every region, so only the key and the signature matter. A presigned request is valid from
    its X-Amz-Date for X-Amz-Expires seconds; its payload is the (empty) body, as botocore signs
    it for every service but S3."""
    sig = _read_signature(environ)
    key_id, date, region, service, terminal = sig.key_id, sig.date, sig.region, sig.service, sig.terminal
    signed, signature, amz_date = sig.signed, sig.signature, sig.amz_date
    if terminal != "aws4_request":
        raise Denied(403, "IncompleteSignatureException", "Credential scope must end with aws4_request")
    if not hmac.compare_digest(key_id.encode(), access_key.encode()):
        raise Denied(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    try:
        stamp = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Denied(403, "IncompleteSignatureException", "X-Amz-Date is missing or malformed") from None
    if not amz_date.startswith(date):
        raise Denied(403, "InvalidSignatureException", "Credential date does not match X-Amz-Date")
    now = now or datetime.now(UTC)
    if sig.expires is not None:
        if now > stamp + timedelta(seconds=sig.expires) or stamp - now > MAX_SKEW:
            raise Denied(403, "AccessDeniedException", "Request has expired")
    elif abs(now - stamp) > MAX_SKEW:
        raise Denied(403, "InvalidSignatureException", "Signature expired: the request time is too skewed")
    if "host" not in signed:
        raise Denied(403, "InvalidSignatureException", "The host header must be signed")
    headers = []
    for name in signed:
        value = _header(environ, name)
        if value is None:
            raise Denied(403, "InvalidSignatureException", f"Signed header {name} is missing")
        headers.append(f"{name}:{' '.join(value.strip().split())}\n")
    payload = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
    actual = hashlib.sha256(body).hexdigest()
    if payload and payload != "UNSIGNED-PAYLOAD" and payload != actual:
        raise Denied(403, "InvalidSignatureException", "The body does not match x-amz-content-sha256")
    path = quote(environ.get("PATH_INFO") or "/", safe="/-_.~")
    canonical = "\n".join([environ.get("REQUEST_METHOD", "GET"), path,
                           _canonical_query(environ.get("QUERY_STRING", ""),
                                            "X-Amz-Signature" if sig.expires is not None else ""),
                           "".join(headers),
                           ";".join(signed), actual if payload != "UNSIGNED-PAYLOAD" else payload])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(signing_key(secret_key, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Denied(403, "InvalidSignatureException",
                     "The request signature we calculated does not match the signature you provided.")


def inside(root: Path, relative: str) -> Path:
    """``root/relative`` if it stays inside ``root`` after resolving links and ``..``; every file
    an endpoint reads or writes goes through here."""
    base = root.resolve()
    target = (base / relative.lstrip("/")).resolve()
    if target != base and base not in target.parents:
        raise Denied(403, "AccessDeniedException", "Path is outside the served directory")
    return target
