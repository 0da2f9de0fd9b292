"""An OpenID Connect provider of the tests' own, built with authlib's server components.

``AuthorizationServer`` with the authorization code grant, ``OpenIDCode`` (RS256-signed ID
tokens under a key generated at start, published as a JWKS) and ``CodeChallenge`` (PKCE, S256
only), behind a small WSGI app on loopback on an ephemeral port (wsgiref, in a thread of its
own, so a browser test's Chromium and an in-process aiohttp test reach it alike). It signs in
``user`` at once: no login form. What it saw is kept for the tests to assert: each
authorization request's parameters and each code verifier it checked.

Knobs a test turns for a refusal: ``audience`` (the ID token's ``aud``), ``expired`` (a token
whose ``exp`` has passed), ``down`` (every answer a 503).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin as OidcCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import RSAKey

CLIENT_ID = "lifeline-test"
CLIENT_SECRET = "provider-test-secret-0123456789"
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass
class ProviderUser:
    """Who the provider signs in, and what its ID token says of them."""

    sub: str
    username: str
    amr: list[str] = field(default_factory=lambda: ["pwd", "otp", "mfa"])
    acr: str = ""
    groups: list[str] = field(default_factory=list)


@dataclass
class IssuedCode(OidcCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str
    code_challenge: str
    code_challenge_method: str
    user: ProviderUser
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return self.user.acr

    def get_amr(self) -> list[str]:
        return self.user.amr


class LifelineClient(ClientMixin):
    """Lifeline, registered as a confidential client: HTTP Basic at the token endpoint, any
    loopback Lifeline's callback as its redirect URI."""

    redirect_re = re.compile(
        r"^http://(127\.0\.0\.1:\d+|localhost(:\d+)?)/login/oidc/[a-z0-9-]+/callback$"
    )

    def get_client_id(self) -> str:
        return CLIENT_ID

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "profile", "groups"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return bool(self.redirect_re.match(redirect_uri))

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret, CLIENT_SECRET)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class WsgiOAuth2Request(OAuth2Request):
    def __init__(
        self,
        method: str,
        uri: str,
        headers: dict[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._args, self._form = dict(query), dict(form)
        self.payload = _Payload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Grant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012 (authlib's own)

    @property
    def provider(self) -> Provider:
        provider: Provider = self.server.provider
        return provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.provider.codes[code] = IssuedCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=request.payload.scope,
            nonce=data.get("nonce", ""),
            code_challenge=data.get("code_challenge", ""),
            code_challenge_method=data.get("code_challenge_method", ""),
            user=request.user,
            auth_time=int(time.time()),
        )

    def query_authorization_code(self, code: str, client: ClientMixin) -> IssuedCode | None:
        found = self.provider.codes.get(code)
        if found is not None and found.client_id == client.get_client_id():
            return found
        return None

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        self.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: IssuedCode) -> ProviderUser:
        return authorization_code.user


class S256Only(CodeChallenge):
    """PKCE required, S256 only; each method asked and each verifier checked is recorded."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (authlib's own)

    def __init__(self, provider: Provider) -> None:
        super().__init__(required=True)
        self.provider = provider

    def validate_code_challenge(self, grant: Grant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with S256 is required")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Grant, result: Any) -> None:
        super().validate_code_verifier(grant, result)  # raises unless it matches
        self.provider.verified.append(grant.request.form.get("code_verifier", ""))


class IdTokens(OpenIDCode):
    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False

    def resolve_client_private_key(self, client: ClientMixin) -> RSAKey:
        return self.provider.key

    def get_encode_header(self, client: ClientMixin) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.provider.key.kid or ""}

    def get_client_claims(self, client: ClientMixin) -> dict[str, Any]:
        now = int(time.time())
        iat, exp = (now - 2 * 3600, now - 3600) if self.provider.expired else (now, now + 300)
        audience = self.provider.audience or client.get_client_id()
        return {"iss": self.provider.issuer, "aud": [audience], "iat": iat, "exp": exp}

    def generate_user_info(self, user: ProviderUser, scope: str) -> dict[str, Any]:
        return {"sub": user.sub, "preferred_username": user.username, "groups": user.groups}


class Server(AuthorizationServer):
    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=["openid", "profile", "groups"])
        self.provider = provider
        self.register_token_generator(
            "default",
            BearerTokenGenerator(access_token_generator=lambda **_: secrets.token_urlsafe(32)),
        )
        self.register_grant(Grant, [S256Only(provider), IdTokens(provider)])

    def query_client(self, client_id: str) -> ClientMixin | None:
        return self.provider.client if client_id == CLIENT_ID else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        return None

    def create_oauth2_request(self, request: WsgiOAuth2Request) -> WsgiOAuth2Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(
        self, status: int, body: Any, headers: Iterable[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class Provider:
    """The provider's state: its key, its one client, the codes it issued, what it saw."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, auto_kid=True)
        self.client = LifelineClient()
        self.codes: dict[str, IssuedCode] = {}
        self.user = ProviderUser(sub="sub-0001", username="nobody")
        self.audience = ""
        self.expired = False
        self.down = False
        self.authorize_requests: list[dict[str, str]] = []
        self.verified: list[str] = []
        self.issuer = ""
        self.server = Server(self)
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": ["openid", "profile", "groups"],
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        with self._lock:  # authlib's server objects are not for two threads at once
            status, body, headers = self._answer(environ)
        text = body if isinstance(body, str) else json.dumps(body)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        start_response(f"{status} {'OK' if status < 300 else 'See'}", headers)
        return [text.encode()]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, Any, list[tuple[str, str]]]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        query = parse_qsl(environ.get("QUERY_STRING", ""))
        form: list[tuple[str, str]] = []
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = parse_qsl(environ["wsgi.input"].read(length).decode())
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        uri = f"{self.issuer}{path}?{environ.get('QUERY_STRING', '')}"
        request = WsgiOAuth2Request(method, uri, headers, query, form)
        if self.down:
            return 503, {"error": "temporarily_unavailable"}, []
        if path == "/.well-known/openid-configuration":
            return 200, self.discovery(), []
        if path == "/jwks":
            return 200, {"keys": [self.key.as_dict(private=False)]}, []
        if path == "/authorize":
            self.authorize_requests.append(dict(query))
            try:
                grant = self.server.get_consent_grant(request, end_user=self.user)
            except OAuth2Error as error:
                return 400, {"error": error.error, "error_description": error.description}, []
            answer: tuple[int, Any, list[tuple[str, str]]] = (
                self.server.create_authorization_response(
                    request, grant_user=self.user, grant=grant
                )
            )
            return answer
        if path == "/token" and method == "POST":
            token: tuple[int, Any, list[tuple[str, str]]] = self.server.create_token_response(
                request
            )
            return token
        return 404, {"error": "not_found"}, []


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def running_provider() -> Iterator[Provider]:
    """The provider serving on 127.0.0.1 on a port of its own until the block ends (its thread
    stops within the serve loop's poll interval)."""
    provider = Provider()
    httpd: WSGIServer = make_server("127.0.0.1", 0, provider, handler_class=_Quiet)
    provider.issuer = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield provider
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def provider_setting(
    provider: Provider, secret_file: str, *, provider_id: str = "police-sso", **extra: Any
) -> str:
    """``LIFELINE_OIDC_PROVIDERS`` naming ``provider``."""
    entry = {
        "id": provider_id,
        "name": "Police SSO",
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret_file": secret_file,
        "scopes": "openid profile groups",
        **extra,
    }
    return json.dumps([entry])
