"""One test's conversation with one provider: live, recorded, or replayed from its cassette.

    async with ProbeSession(...) as s:
        ex = await s.send(spec)

Replay goes through respx (no socket is opened); live sends go through the raw-byte transport; the
record modes write the test's cassette when the session closes (atomically, scrubbed).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import certifi
import httpx
import respx

from .cassette import Cassette, Replayer, exchange_to_interaction, merge_interactions, new_header, request_key
from .config import Provider
from .errors import CassetteError
from .exchange import Exchange
from .scrub import Scrubber
from .transport import RequestSpec, Transport

RecordMode = Literal["none", "once", "new_episodes", "all", "rewrite"]
RECORD_MODES: tuple[str, ...] = ("none", "once", "new_episodes", "all", "rewrite")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verified TLS context for the whole process: building one (loading the CA bundle) costs more
    than replaying a check, and httpx would otherwise build one per client."""
    return ssl.create_default_context(cafile=certifi.where())


def model_slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def cassette_path(root: Path, provider: Provider, model: str, module: str, test: str) -> Path:
    """fixtures/cassettes/<provider>/<module>/<test>.yaml; a model other than the default adds --<model>."""
    name = test if model == provider.model else f"{test}--{model_slug(model)}"
    return root / provider.name / module / f"{name}.yaml"


@dataclass
class LiveMemo:
    """Identical live requests within one pytest session are sent once (probes marked fresh excepted)."""
    store: dict[tuple[object, ...], Exchange] = field(default_factory=dict)

    @staticmethod
    def key(provider: str, model: str, spec: RequestSpec) -> tuple[object, ...]:
        """Everything that changes what is sent: the request line, the body, the credentials, extra headers."""
        return (provider, model, request_key(spec.method, spec.path, spec.body_bytes()), spec.auth,
                tuple(sorted(spec.headers.items())), spec.base_url)


class ProbeSession:
    """Sends a test's requests according to the record mode and keeps what it must write."""

    def __init__(self, *, provider: Provider, model: str, path: Path, mode: str, live_only: bool,
                 api_key: str | None, scrubber: Scrubber, memo: LiveMemo, test_id: str,
                 rerecord: str, server_info: dict[str, Any] | None = None) -> None:
        self.provider = provider
        self.model = model
        self.path = path
        self.mode = mode
        self.live_only = live_only
        self.api_key = api_key
        self.scrubber = scrubber
        self.memo = memo
        self.test_id = test_id
        self.rerecord = rerecord
        self.server_info = server_info or {}
        self.cassette: Cassette | None = None
        self.replayer: Replayer | None = None
        self.recorded: list[Exchange] = []
        self._client: httpx.AsyncClient | None = None
        self._router: respx.MockRouter | None = None

    # -- what this session will do ------------------------------------------------------------------
    @property
    def replay_only(self) -> bool:
        return not self.live_only and self.mode == "none"

    def prepare(self) -> None:
        """Load the cassette when the mode replays from it. Raises CassetteError on a corrupt file."""
        if self.live_only or self.mode in ("all", "rewrite"):
            return
        if self.path.exists():
            self.cassette = Cassette.load(self.path)
            base_path = httpx.URL(self.provider.base_url or "http://replay.invalid").raw_path.decode().rstrip("/")
            self.replayer = Replayer(self.cassette, base_path, self.rerecord)

    @property
    def writes(self) -> bool:
        if self.live_only or self.mode == "none":
            return False
        if self.mode == "once":
            return self.cassette is None
        return True

    # -- sending ------------------------------------------------------------------------------------
    async def __aenter__(self) -> "ProbeSession":
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=tls_context())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._client is not None
        await self._client.aclose()
        if exc[0] is None:
            self.save()

    async def send(self, spec: RequestSpec, *, fresh: bool = False) -> Exchange:
        assert self._client is not None, "use `async with ProbeSession(...)`"
        body = spec.body_bytes()
        replay = self.replayer is not None and (
            self.mode in ("none", "once") or self.replayer.has(spec.method, spec.path, body))
        if replay or self.replay_only:
            return await self._replay(spec)
        key = self.memo.key(self.provider.name, self.model, spec)
        if not fresh and key in self.memo.store:
            ex = self.memo.store[key]
        else:
            transport = Transport(self.provider, self._client, api_key=self.api_key, scrubber=self.scrubber)
            ex = await transport.send(spec)
            if not fresh:
                self.memo.store[key] = ex
        self.recorded.append(ex)
        return ex

    async def _replay(self, spec: RequestSpec) -> Exchange:
        if self.replayer is None:
            raise CassetteError(f"no cassette at {self.path}")
        if self._router is None:
            self._router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
            self._router.route().mock(side_effect=self.replayer)
        transport = Transport(self.provider, self._client, api_key=None, scrubber=self.scrubber, replay=True)  # type: ignore[arg-type]
        # the recorded URL's host may differ from today's base_url: only method, path and body match
        replay_spec = spec if self.provider.base_url else dataclasses.replace(spec, base_url="http://replay.invalid")
        with self._router:
            return await transport.send(replay_spec)

    # -- writing ------------------------------------------------------------------------------------
    def save(self) -> None:
        if not self.writes or not self.recorded:
            return
        new = [exchange_to_interaction(ex) for ex in self.recorded]
        if self.mode == "new_episodes" and self.cassette is not None:
            interactions = merge_interactions(self.cassette.interactions, new)
            if len(interactions) == len(self.cassette.interactions):
                return
            header = {**self.cassette.header, "updated_at": new_header(
                provider="", model="", test="", record_mode="", server={})["recorded_at"]}
        else:
            interactions = new
            header = new_header(provider=self.provider.name, model=self.model, test=self.test_id,
                                record_mode=self.mode, server=self._server_identity())
        Cassette(self.path, header, interactions).save(self.scrubber)

    def _server_identity(self) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": self.provider.kind}
        if self.provider.software:
            info["software"] = dict(self.provider.software)
        for ex in self.recorded:
            if ex.header("server"):
                info["server_header"] = ex.header("server")
                break
        for ex in self.recorded:
            body = ex.json_or_none()
            if isinstance(body, dict) and isinstance(body.get("system_fingerprint"), str):
                info["system_fingerprint"] = body["system_fingerprint"]
                break
        info.update(self.server_info)
        return info
