"""Data-plane replica mode (`turnout serve --role data --control-url URL …`): a data plane without a store.

- The table comes from any reachable control replica by long-poll (`GET /api/v1/table?after=V&wait=S`);
  a replica that answers nothing, an error or an older version is skipped for the next URL.
- Static stability: when no control replica answers, the replica keeps serving on the last table it has. Each
  table it adopts is also written to `dataplane.table_file` (atomically: a temporary file, then a rename), so a
  replica restarted while the control plane is unreachable opens its port at once and serves that table (its
  withdrawn and open targets stay out) instead of starting empty; `/readyz` and the gauge
  `turnout_replica_table_from_disk` say so until a control replica answers.
- Passive outlier detection, always on (dataplane/ejection.py, the same mechanism as in `--role all`):
  `consecutive_failures` failures in a row (or one withdrawing answer: auth, region_blocked, model_gone,
  quota_exhausted) eject a target locally for `open_duration`, doubling on repeat ejections up to
  `open_duration_max` (Envoy's outlier detection). A route never loses its last admissible target this way
  (ejecting it would only turn errors into 503s).
- Client keys: the key ring (usable keys' hashes, limits, spend this period) is read from a control replica every
  `auth.data.refresh_interval` (`GET /api/v1/keys/ring`, `fetch_ring`); dataplane/keys.py checks requests against it.
- Every upstream attempt's outcome is buffered and posted in batches of `dataplane.report_batch` to
  `POST /api/v1/observations` on the leader; the buffer holds `dataplane.report_buffer` outcomes, the
  oldest dropped first when full, counted in `turnout_dataplane_reports_dropped_total`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson

from controlplane.clock import Clock, SystemClock
from controlplane.config import Config
from controlplane.config_loader import load_config
from controlplane.decisions import Decision
from controlplane.domain import Observation
from controlplane.keys.model import Ring
from controlplane.metrics import Metrics
from controlplane.publisher import TablePublisher
from controlplane.scaleout.replication_api import decision_to_wire, observation_to_wire
from controlplane.table import Table
from dataplane.ejection import EjectingTable, OutlierDetector

__all__ = ["OutlierDetector", "ReplicaTable", "OutcomeReporter", "DataReplica", "control_token", "kept_table_path"]

log = logging.getLogger("turnout.replica")

LONG_POLL_S = 25.0
_ENCODE_CHUNK = 50  # report items encoded between two turns of the event loop (~0.2 ms)
T = TypeVar("T")
_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 2.0


def kept_table_path(config: Config, override: str | None = None) -> Path | None:
    """Where a data replica keeps its last table: `override`, else `dataplane.table_file`, else one file per data
    port in $TURNOUT_STATE_DIR (the temporary directory by default); an empty string keeps none."""
    chosen = override if override is not None else config.dataplane.table_file
    if chosen is not None:
        return Path(chosen) if chosen else None
    state = os.environ.get("TURNOUT_STATE_DIR") or tempfile.gettempdir()
    return Path(state) / f"turnout-replica-{config.server.data.port}.json"


def control_token(config: Config) -> str | None:
    """The bearer token for reports: `TURNOUT_CONTROL_TOKEN`, else the first admin token in the config."""
    env = os.environ.get("TURNOUT_CONTROL_TOKEN")
    if env:
        return env
    return next((t.token.get_secret_value() for t in config.auth.tokens if t.scope == "admin"), None)


class ReplicaTable(EjectingTable):
    """The replica's TableSource: the control plane's table (followed into `base`) with local ejections applied."""

    def __init__(self, detector: OutlierDetector, initial: Table | None = None) -> None:
        self.base = TablePublisher(initial or Table(version=0, published_at=datetime.now(UTC)))
        super().__init__(self.base, detector)

    def offer(self, table: Table) -> bool:
        """Adopt a table from a control replica when it is newer; older versions are ignored."""
        if table.version <= self.base.version:
            return False
        self.base.publish(table)
        return True


class OutcomeReporter:
    """The replica's ObservationSink: feeds the outlier detector and buffers outcomes for the control plane."""

    def __init__(self, detector: OutlierDetector, metrics: Metrics, *, capacity: int, batch: int) -> None:
        self.detector, self.metrics, self.capacity, self.batch = detector, metrics, capacity, batch
        self._buf: deque[Observation] = deque()
        self.dropped = 0

    def submit(self, obs: Observation) -> None:
        self.detector.record(obs)
        self._buf.append(obs)
        self._trim()

    def _trim(self) -> None:
        while len(self._buf) > self.capacity:
            self._buf.popleft()  # the oldest matter least to the breakers
            self.dropped += 1
            self.metrics.dataplane_reports_dropped_total.inc()

    def __len__(self) -> int:
        return len(self._buf)

    def take(self) -> list[Observation]:
        """Remove and return up to one batch, oldest first."""
        n = min(self.batch, len(self._buf))
        return [self._buf.popleft() for _ in range(n)]

    def give_back(self, batch: Sequence[Observation]) -> None:
        """A batch that could not be sent goes back in front; the buffer bound still holds."""
        self._buf.extendleft(reversed(batch))
        self._trim()


async def _encode(items: Sequence[T], to_wire: Callable[[T], dict[str, Any]], chunk: int = _ENCODE_CHUNK) -> bytes:
    """A JSON array of `to_wire(item)`, built a chunk at a time with the loop let go in between: a full batch of
    200 outcomes and 200 records encoded at once held the data plane's event loop for ~0.6 ms, many times a second
    under load; a chunk holds it ~0.15 ms."""
    parts: list[bytes] = []
    for start in range(0, len(items), chunk):
        if start:
            await asyncio.sleep(0)
        parts.append(orjson.dumps([to_wire(i) for i in items[start : start + chunk]])[1:-1])
    return b"[" + b",".join(parts) + b"]"


class DataReplica:
    """What `build_data_app(deps)` needs (controlplane/seams.py: DataPlaneDeps), fed from control replicas: no
    store, so decision-log records are forwarded. `start()` begins following and reporting; `stop()` flushes one
    last batch."""

    decision_engine: None = None  # records go to the control plane with the outcome reports (forward_decision)

    def __init__(
        self,
        config: Config,
        control_urls: Sequence[str],
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        config_path: str | None = None,
        token: str | None = None,
        long_poll: float = LONG_POLL_S,
        report_interval: float = 0.5,
        first_table_timeout: float = 10.0,
        table_file: str | None = None,
    ) -> None:
        if not control_urls:
            raise ValueError("--control-url: a data replica needs at least one control replica URL")
        self.config = config
        self.config_path = config_path
        self.urls = [u.rstrip("/") for u in control_urls]
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.detector = OutlierDetector.from_config(config, self.clock)
        self.table_source = ReplicaTable(self.detector)
        dp = config.dataplane
        self.sink = OutcomeReporter(self.detector, self.metrics, capacity=dp.report_buffer, batch=dp.report_batch)
        # Decision-log records go to the control plane with the outcome reports, under the same bound.
        self.decisions: deque[Decision] = deque(maxlen=dp.report_buffer)
        self.token = token if token is not None else control_token(config)
        self.long_poll, self.report_interval = long_poll, report_interval
        self.first_table_timeout = first_table_timeout
        self.table_file = kept_table_path(config, table_file)
        # The key ring is kept beside the table (hashes and limits only, never a key): a replica restarted while no
        # control replica answers checks keys against it instead of refusing everyone.
        self.ring_file = self.table_file.with_name(self.table_file.name + ".keys") if self.table_file else None
        self._ring_kept: bytes | None = None  # what ring_file holds (written only when the ring changed)
        self.table_from_disk = False  # serving a table read from table_file; no control replica answered since
        self._file_failed = False  # one log line per run of failed writes
        self._writing: asyncio.Future[None] | None = None
        self._table_url = 0  # index of the control replica we follow the table from
        self._report_url = 0  # and the one we report to (the leader, once found)
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False  # the last long-poll got an answer
        self.sent = 0  # outcomes the control plane accepted
        self.decisions_sent = 0  # decision-log records the control plane accepted
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._http = aiohttp.ClientSession(headers={"User-Agent": "turnout-data-replica/0.1"})
        kept = await asyncio.to_thread(self._read_table_file)
        if kept is not None and self.table_source.offer(kept):
            # The last table we had, at once: better than waiting for a control plane that may be down.
            self._set_from_disk(True)
            log.warning("serving table v%d from %s until a control replica answers", kept.version, self.table_file)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow_forever(), name="turnout-replica-follow"),
            loop.create_task(self._report_forever(), name="turnout-replica-report"),
        ]
        self.started = True
        # Open the port with a table when one is to be had: requests before the first table could only fail.
        if kept is None and await self.table_source.base.wait_newer(0, self.first_table_timeout) is None:
            log.warning(
                "no control replica answered within %.0fs (%s); serving without a table until one does",
                self.first_table_timeout,
                ", ".join(self.urls),
            )
        self.metrics.ready.set(1)
        log.info("data replica following %s at table v%d", ", ".join(self.urls), self.table_source.base.version)

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.metrics.ready.set(0)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        try:
            async with asyncio.timeout(2.0):
                await self.report_once()  # the last outcomes, if the leader is there to take them
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        if self._http is not None:
            await self._http.close()

    async def reload_config(self, *, actor: str = "system") -> Config:
        if not self.config_path:
            raise ValueError("this replica was not started from a file")
        cfg = await asyncio.to_thread(load_config, self.config_path)
        self.config = cfg
        log.info("data replica config reloaded by %s (hash %s)", actor, cfg.hash)
        return cfg

    def status(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "table_version": self.table_source.base.version,
            "connected": self.connected,
            "buffered": len(self.sink),
            "dropped": self.sink.dropped,
            "ejected": sorted(self.detector.ejected()),
            "table_from_disk": self.table_from_disk,
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """For `/readyz` on the data port: ready once a table is loaded; which one, and where it came from."""
        version = self.table_source.base.version
        source = "none" if version == 0 else "disk" if self.table_from_disk else "control"
        return version > 0 and self.started, {
            "table_version": version,
            "table_source": source,
            "control_connected": self.connected,
        }

    # -- the table on local disk ------------------------------------------------------------
    def _set_from_disk(self, on: bool) -> None:
        self.table_from_disk = on
        self.metrics.replica_table_from_disk.set(1 if on else 0)

    def _read_table_file(self) -> Table | None:
        """The table kept by the last run, or None (no file, or one we cannot read: logged, never fatal)."""
        if self.table_file is None or not self.table_file.exists():
            return None
        try:
            return Table.from_dict(orjson.loads(self.table_file.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: kept table not usable (%s); waiting for a control replica", self.table_file, exc)
            return None

    def _write_table_file(self, table: Table) -> None:
        """Replace the kept table atomically (a crash mid-write leaves the previous one); failures are logged once
        per run of failures and never stop serving."""
        if self.table_file is None:
            return
        path = self.table_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(orjson.dumps(table.to_dict()))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            if not self._file_failed:
                log.warning("could not keep table v%d in %s: %s", table.version, path, exc)
            self._file_failed = True
            return
        self._file_failed = False

    # -- table ------------------------------------------------------------------------------
    async def follow_once(self, wait: float | None = None) -> bool:
        """One long-poll against the current control URL. True when it answered (200 or 304)."""
        assert self._http is not None, "start() first"
        wait = self.long_poll if wait is None else wait
        url = self.urls[self._table_url % len(self.urls)]
        after = self.table_source.base.version
        try:
            async with self._http.get(
                f"{url}/api/v1/table",
                params={"after": str(after), "wait": f"{wait:g}"},
                timeout=aiohttp.ClientTimeout(total=wait + 5.0, sock_connect=2.0),
            ) as r:
                if r.status == 304:
                    self.connected = True
                    if self.table_from_disk:  # the control plane has nothing newer: what we serve is current
                        self._set_from_disk(False)
                    return True
                if r.status != 200:
                    raise aiohttp.ClientResponseError(r.request_info, (), status=r.status)
                table = Table.from_dict(await r.json())
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            if self.connected:
                log.warning("control replica %s unreachable (%s); serving table v%d", url, type(exc).__name__, after)
            self.connected = False
            self._table_url += 1
            return False
        self.connected = True
        if self.table_from_disk:
            self._set_from_disk(False)
        if self.table_source.offer(table):
            # Shielded: a stop() while the file is written waits for it (it never leaves half a file either way).
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._write_table_file, table))
            await asyncio.shield(self._writing)
        else:
            self._table_url += 1  # a lagging follower: prefer another replica next time
        return True

    async def _follow_forever(self) -> None:
        backoff = _BACKOFF_MIN
        while True:
            if await self.follow_once():
                backoff = _BACKOFF_MIN
            else:  # one round over every URL before backing off further
                await asyncio.sleep(backoff)
                if self._table_url % len(self.urls) == 0:
                    backoff = min(backoff * 2, _BACKOFF_MAX)

    # -- client keys ------------------------------------------------------------------------
    async def fetch_ring(self) -> Ring:
        """The key ring from the first control replica that answers (any of them: it is read from the store)."""
        assert self._http is not None, "start() first"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        problems: list[str] = []
        for i in range(len(self.urls)):
            url = self.urls[(self._table_url + i) % len(self.urls)]
            try:
                async with self._http.get(
                    f"{url}/api/v1/keys/ring",
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=5.0, sock_connect=2.0),
                ) as r:
                    if r.status != 200:
                        problems.append(f"{url}: HTTP {r.status}")
                        continue
                    ring = Ring.from_wire(await r.json())
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{url}: {type(exc).__name__}")
                continue
            await asyncio.to_thread(self._keep_ring, ring)
            return ring
        if self._ring_kept is None:  # nothing read yet in this run: the ring the last run kept, if any
            kept = await asyncio.to_thread(self._read_ring_file)
            if kept is not None:
                log.warning("checking client keys against the ring kept in %s until a control replica answers",
                            self.ring_file)  # fmt: skip
                return kept
        raise ConnectionError("no control replica gave the key ring (" + "; ".join(problems) + ")")

    def _keep_ring(self, ring: Ring) -> None:
        data = orjson.dumps(ring.to_wire())
        if self.ring_file is None or data == self._ring_kept:
            return
        try:
            tmp = self.ring_file.with_name(f".{self.ring_file.name}.tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # hashes, but nobody else's business
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.ring_file)
            self._ring_kept = data
        except OSError as exc:
            log.warning("%s: key ring not kept (%s)", self.ring_file, exc)

    def _read_ring_file(self) -> Ring | None:
        if self.ring_file is None or not self.ring_file.exists():
            return None
        try:
            data = self.ring_file.read_bytes()
            ring = Ring.from_wire(orjson.loads(data))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: kept key ring not usable (%s)", self.ring_file, exc)
            return None
        self._ring_kept = data
        return ring

    # -- reports ----------------------------------------------------------------------------
    def forward_decision(self, d: Decision) -> None:
        """The data plane's decision log hands each record here (no store of our own); the oldest go first when full."""
        if len(self.decisions) == self.decisions.maxlen:
            self.metrics.dataplane_reports_dropped_total.inc()
        self.decisions.append(d)

    async def report_once(self) -> int:
        """Send one batch to the leader (trying each URL once). Returns how many items (outcomes and decision
        records) were accepted."""
        assert self._http is not None, "start() first"
        batch = self.sink.take()
        records = [self.decisions.popleft() for _ in range(min(self.sink.batch, len(self.decisions)))]
        if not batch and not records:
            return 0
        payload = b'{"replica":%b,"observations":%b,"decisions":%b}' % (
            orjson.dumps(f"data@{os.getpid()}"),
            await _encode(batch, observation_to_wire),
            await _encode(records, decision_to_wire),
        )
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for _ in range(len(self.urls)):
            url = self.urls[self._report_url % len(self.urls)]
            try:
                async with self._http.post(
                    f"{url}/api/v1/observations",
                    data=payload,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=10.0, sock_connect=2.0),
                ) as r:
                    if r.status == 202:
                        self.sent += len(batch)
                        self.decisions_sent += len(records)
                        return len(batch) + len(records)
                    if r.status in (400, 401, 403, 413, 422):  # will never be accepted: do not retry forever
                        log.error(
                            "control plane refused a report batch of %d: HTTP %d %s",
                            len(batch),
                            r.status,
                            (await r.text())[:200],
                        )
                        return 0
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            self._report_url += 1  # not the leader, or unreachable: the next one
        self.sink.give_back(batch)
        self.decisions.extendleft(reversed(records))  # back in front; the bound drops from the far end
        return 0

    async def _report_forever(self) -> None:
        backoff = self.report_interval
        while True:
            await asyncio.sleep(backoff if len(self.sink) < self.sink.batch else 0)
            if not len(self.sink) and not self.decisions:
                continue
            backoff = self.report_interval if await self.report_once() else min(backoff * 2, 5.0)
