"""One test's conversation with one provider: live, recorded, or replayed from its cassette.

    async with ProbeSession(...) as s:
        ex = await s.send(spec)

What is replayed and what is sent is the RunMode's answer (oaicompat.run_mode). Live sends go through the
raw-byte transport over a real httpx client. Replay goes through the same transport over an httpx client
whose transport is an `httpx.MockTransport` serving the cassette (built once per session; no socket is
opened); the session then restores what was measured when the interaction was recorded (arrival times,
retries, elapsed time, the recorded failure, provenance) and scrubs. The record modes write the test's
cassette when the session closes (atomically, scrubbed), then release the exchanges and cassette they held.
Live exchanges are shared across tests through a LiveMemo whose memory is bounded (see LiveMemo).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import ssl
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import certifi
import httpx

from .budget import Meter
from .cassette import (
    RECORDED_ATTRIBUTE,
    RECORDED_EXTENSION,
    Cassette,
    Replayer,
    exchange_to_interaction,
    merge_interactions,
    new_header,
    request_key,
)
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


MEMO_BUDGET_BYTES = 64 * 1024 * 1024         # the live memo keeps at most this many body bytes in all
MEMO_MAX_EXCHANGE_BYTES = 4 * 1024 * 1024    # an exchange larger than this is not memoised at all


def exchange_bytes(ex: Exchange) -> int:
    """What an exchange costs the memo: its response body and its request body, in bytes."""
    return sum(len(c.data) for c in ex.chunks) + len(ex.request.body)


def _bare(ex: Exchange) -> Exchange:
    """A copy of `ex` sharing its bytes but none of what checks computed from them (parsed JSON, SSE events,
    the joined body and text are cached on the object that was read): only the bytes are kept or handed out."""
    return dataclasses.replace(ex, request=dataclasses.replace(ex.request))


class MemoStore(MutableMapping[tuple[object, ...], Exchange]):
    """The memo's exchanges, least recently used first, within a byte budget (see LiveMemo).

    Storing an exchange larger than `max_exchange_bytes` keeps nothing (and forgets an older answer under that
    key); storing past `budget_bytes` evicts the least recently used exchanges first. Reading an entry marks it
    recently used and returns a fresh copy, so what one test's checks compute from it is not kept for the next."""

    def __init__(self, budget_bytes: int = MEMO_BUDGET_BYTES,
                 max_exchange_bytes: int = MEMO_MAX_EXCHANGE_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self.max_exchange_bytes = min(max_exchange_bytes, budget_bytes)
        self.nbytes = 0                     # body bytes held now (always <= budget_bytes)
        self.evicted = 0                    # exchanges dropped to stay within the budget
        self.refused = 0                    # exchanges too large to keep
        self._entries: OrderedDict[tuple[object, ...], tuple[Exchange, int]] = OrderedDict()

    def __getitem__(self, key: tuple[object, ...]) -> Exchange:
        ex, _ = self._entries[key]
        self._entries.move_to_end(key)
        return _bare(ex)

    def __setitem__(self, key: tuple[object, ...], ex: Exchange) -> None:
        if key in self._entries:
            del self[key]
        size = exchange_bytes(ex)
        if size > self.max_exchange_bytes:
            self.refused += 1
            return
        self._entries[key] = (_bare(ex), size)
        self.nbytes += size
        while self.nbytes > self.budget_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.nbytes -= dropped
            self.evicted += 1

    def __delitem__(self, key: tuple[object, ...]) -> None:
        _, size = self._entries.pop(key)
        self.nbytes -= size

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class LiveMemo:
    """Identical live requests within one pytest session are sent once (probes marked fresh excepted), within
    a memory budget that does not grow with the session.

    The memo keeps the scrubbed exchanges' bytes only (never what checks parsed from them), least recently used
    first out, at most MEMO_BUDGET_BYTES of bodies in all. An exchange larger than MEMO_MAX_EXCHANGE_BYTES (a
    conformant reply is a few kilobytes; a hostile one can reach the transport's 12 MiB cap) is not memoised: a
    later identical request is sent again, as a fresh probe is, rather than holding its body for the rest of the
    session. Chosen over spilling it to disk: a vendor's bytes are written only where the recorder writes them,
    and what it costs is a repeated request, never memory."""
    store: MemoStore = field(default_factory=MemoStore)

    @property
    def nbytes(self) -> int:
        """Body bytes the memo holds now."""
        return self.store.nbytes

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
        self._released = False      # `release` dropped the loaded cassette

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
    async def __aenter__(self) -> ProbeSession:
        if self._released:          # entered again after `release`: read the cassette again
            self._released = False
            self.prepare()
        self._open = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open = False
        try:
            for client in (self._live_client, self._replay_client):
                if client is not None:
                    await client.aclose()
            self._live_client = self._replay_client = None
            if exc[0] is None:
                self.save()
        finally:
            self.release()

    def release(self) -> None:
        """Drop what the test no longer needs once its interactions are written (or failed to be): the exchanges
        it recorded and the cassette it replayed, so a session kept alive (a traceback's frame, a hook) does not
        keep them. The exchanges `send` returned stay with whoever holds them."""
        self.recorded = []
        self._served = None
        if self.cassette is not None or self.replayer is not None:
            self.cassette = self.replayer = None
            self._released = True

    async def send(self, spec: RequestSpec, *, fresh: bool = False) -> Exchange:
        assert self._open, "use `async with ProbeSession(...)`"
        recorded = self.replayer is not None and self.replayer.has(spec.method, spec.path, spec.body_bytes())
        if self.mode.replays(cassette_loaded=self.replayer is not None, recorded=recorded):
            return await self._replay(spec)
        key = self.memo.key(self.provider.name, self.model, spec)
        ex = None if fresh else self.memo.store.get(key)
        if ex is None:
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


__all__ = ["MEMO_BUDGET_BYTES", "MEMO_MAX_EXCHANGE_BYTES", "RECORD_MODES", "REPLAY_BASE_URL", "LiveMemo",
           "MemoStore", "NotReady", "ProbeSession", "RecordMode", "RunMode",
           "cassette_path", "credentials", "model_slug", "tls_context"]
