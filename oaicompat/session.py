"""One test's conversation with one provider: live, recorded, or replayed from its cassette.

    async with ProbeSession(...) as s:
        ex = await s.send(spec)

What is replayed and what is sent is the RunMode's answer (oaicompat.run_mode). Live sends go through the
raw-byte transport over a real httpx client. Replay goes through the same transport over an httpx client
whose transport is an `httpx.MockTransport` serving the cassette (built once per session; no socket is
opened); the session then restores what was measured when the interaction was recorded (arrival times,
retries, elapsed time, the recorded failure, provenance) and scrubs. The record modes write the test's
cassette when the session closes (atomically, scrubbed).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import certifi
import httpx

from .budget import Meter
from .cassette import (RECORDED_ATTRIBUTE, RECORDED_EXTENSION, Cassette, Replayer, exchange_to_interaction,
                       merge_interactions, new_header, request_key)
from .config import Provider
from .errors import CassetteError
from .exchange import Attempt, Chunk, Exchange, TransportFailure
from .run_mode import RECORD_MODES, RecordMode, RunMode
from .scrub import Scrubber
from .transport import RequestSpec, Transport

REPLAY_BASE_URL = "http://replay.invalid"   # where replay "sends" when providers.yaml has no base_url


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


@dataclass(frozen=True)
class NotReady:
    """Why a session cannot run its test at all (the runner reports it as this outcome)."""
    outcome: Literal["not-recorded", "not-configured", "unavailable"]
    message: str


def credentials(provider: Provider, env: Mapping[str, str]) -> tuple[str | None, tuple[str, ...]]:
    """The provider's API key from `env`, and the variables still missing before it can be sent to."""
    missing = list(provider.missing_vars)
    api_key = provider.api_key(env)
    if provider.api_key_env and not api_key:
        missing.append(provider.api_key_env)
    return api_key, tuple(missing)


class ProbeSession:
    """Sends a test's requests according to the run mode and keeps what it must write.

    `mode`: a RunMode (a record-mode string and `live_only` are accepted and parsed into one).
    `missing`: configuration the provider lacks (see `credentials`); `record_hint`: the command that records
    this test, quoted when its cassette is missing; `meter`: counts the tokens live replies report and raises
    BudgetExhausted before a send that would go over --budget."""

    def __init__(self, *, provider: Provider, model: str, path: Path, mode: RunMode | str,
                 api_key: str | None, scrubber: Scrubber, memo: LiveMemo, test_id: str,
                 rerecord: str, live_only: bool = False, server_info: dict[str, Any] | None = None,
                 missing: Sequence[str] = (), record_hint: str = "", meter: Meter | None = None) -> None:
        self.provider = provider
        self.model = model
        self.path = path
        self.mode = mode if isinstance(mode, RunMode) else RunMode.parse(mode, live=live_only)
        self.api_key = api_key
        self.scrubber = scrubber
        self.memo = memo
        self.test_id = test_id
        self.rerecord = rerecord
        self.record_hint = record_hint or rerecord
        self.missing = tuple(missing)
        self.server_info = server_info or {}
        self.meter = meter          # the run's token meter and --budget (live sends only)
        self.cassette: Cassette | None = None
        self.replayer: Replayer | None = None
        self.recorded: list[Exchange] = []
        self._live_client: httpx.AsyncClient | None = None
        self._replay_client: httpx.AsyncClient | None = None
        self._served: Mapping[str, Any] | None = None     # the recorded metadata of the last replayed answer
        self._open = False

    # -- what this session will do ------------------------------------------------------------------
    @property
    def replay_only(self) -> bool:
        return self.mode.replay_only

    @property
    def sends_live(self) -> bool:
        """The test may send to the provider (so its URL and key must be configured)."""
        return self.mode.needs_credentials(cassette_exists=self.path.exists())

    def not_ready(self, down: Mapping[str, str] | None = None) -> NotReady | None:
        """Why the test cannot run: no cassette to replay, no key or URL to send with, or the provider was
        found unreachable earlier in this run (`down`: provider → why)."""
        if self.mode.requires_cassette and not self.path.exists():
            return NotReady("not-recorded", f"not recorded: no cassette {self.path}; record it with: "
                                            f"{self.record_hint}")
        if self.sends_live:
            if self.missing:
                return NotReady("not-configured", f"not configured: set {' and '.join(self.missing)}")
            if down and self.provider.name in down:
                return NotReady("unavailable", f"provider unavailable: {down[self.provider.name]}")
        return None

    def prepare(self) -> None:
        """Load the cassette when the mode reads it. Raises CassetteError on a corrupt file."""
        if not self.mode.loads_cassette:
            return
        if self.path.exists():
            self.cassette = Cassette.load(self.path)
            base_path = httpx.URL(self.provider.base_url or REPLAY_BASE_URL).raw_path.decode().rstrip("/")
            self.replayer = Replayer(self.cassette, base_path, self.rerecord)

    @property
    def writes(self) -> bool:
        return self.mode.writes(cassette_loaded=self.cassette is not None)

    # -- sending ------------------------------------------------------------------------------------
    async def __aenter__(self) -> "ProbeSession":
        self._open = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open = False
        for client in (self._live_client, self._replay_client):
            if client is not None:
                await client.aclose()
        self._live_client = self._replay_client = None
        if exc[0] is None:
            self.save()

    async def send(self, spec: RequestSpec, *, fresh: bool = False) -> Exchange:
        assert self._open, "use `async with ProbeSession(...)`"
        recorded = self.replayer is not None and self.replayer.has(spec.method, spec.path, spec.body_bytes())
        if self.mode.replays(cassette_loaded=self.replayer is not None, recorded=recorded):
            return await self._replay(spec)
        key = self.memo.key(self.provider.name, self.model, spec)
        if not fresh and key in self.memo.store:
            ex = self.memo.store[key]
        else:
            if self.meter is not None:
                self.meter.admit(self.provider.name, spec, self.test_id)     # may raise BudgetExhausted
            transport = Transport(self.provider, self._live(), api_key=self.api_key)
            ex = self.scrubber.exchange(await transport.send(spec))
            if self.meter is not None:
                self.meter.spent(self.provider.name, ex)
            if not fresh:
                self.memo.store[key] = ex
        self.recorded.append(ex)
        return ex

    def _live(self) -> httpx.AsyncClient:
        if self._live_client is None:
            self._live_client = httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=tls_context())
        return self._live_client

    # -- replay -------------------------------------------------------------------------------------
    def _serve(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler: the cassette's answer, noting its recorded metadata for `_restore`."""
        assert self.replayer is not None
        self._served = None
        try:
            response = self.replayer(request)
        except Exception as exc:          # a recorded "no response" carries its metadata on the exception
            self._served = getattr(exc, RECORDED_ATTRIBUTE, None)
            raise
        self._served = response.extensions.get(RECORDED_EXTENSION)
        return response

    async def _replay(self, spec: RequestSpec) -> Exchange:
        if self.replayer is None:
            raise CassetteError(f"no cassette at {self.path}")
        if self._replay_client is None:
            self._replay_client = httpx.AsyncClient(transport=httpx.MockTransport(self._serve),
                                                    follow_redirects=False, trust_env=False)
        transport = Transport(self.provider, self._replay_client, api_key=None)
        # the recorded URL's host may differ from today's base_url: only method, path and body match;
        # retries were already made when recording
        replay_spec = dataclasses.replace(spec, retries=0, base_url=spec.base_url if self.provider.base_url
                                          else REPLAY_BASE_URL)
        ex = await transport.send(replay_spec)
        return self.scrubber.exchange(_restore(ex, self._served))

    # -- writing ------------------------------------------------------------------------------------
    def save(self) -> None:
        if not self.writes or not self.recorded:
            return
        new = [exchange_to_interaction(ex) for ex in self.recorded]
        if self.mode.merges and self.cassette is not None:
            interactions = merge_interactions(self.cassette.interactions, new)
            if len(interactions) == len(self.cassette.interactions):
                return
            header = {**self.cassette.header, "updated_at": new_header(
                provider="", model="", test="", record_mode="", server={})["recorded_at"]}
        else:
            interactions = new
            header = new_header(provider=self.provider.name, model=self.model, test=self.test_id,
                                record_mode=self.mode.record_mode, server=self._server_identity())
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


def _restore(ex: Exchange, recorded: Mapping[str, Any] | None) -> Exchange:
    """A replayed exchange as it was recorded: the recorded arrival times (when the chunks line up), retries,
    elapsed time, failure and provenance replace what replaying measured; its source is "cassette"."""
    if recorded is None:
        return dataclasses.replace(ex, source="cassette")
    chunks, attempts, elapsed = ex.chunks, ex.attempts, ex.elapsed
    times = recorded.get("chunk_times") or []
    if len(times) == len(chunks):
        chunks = tuple(Chunk(t, c.data) for t, c in zip(times, chunks))
    attempts = tuple(Attempt(**a) for a in recorded.get("attempts", [])) or attempts
    rec_elapsed = recorded.get("elapsed")
    recorded_failure = recorded.get("failure")
    return dataclasses.replace(
        ex, chunks=chunks, attempts=attempts, elapsed=float(rec_elapsed) if rec_elapsed is not None else elapsed,
        failure=TransportFailure(**recorded_failure) if recorded_failure else None,
        source="cassette", meta=dict(recorded.get("meta", {})),
    )


__all__ = ["RECORD_MODES", "REPLAY_BASE_URL", "LiveMemo", "NotReady", "ProbeSession", "RecordMode", "RunMode",
           "cassette_path", "credentials", "model_slug", "tls_context"]
