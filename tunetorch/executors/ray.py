"""The Ray executor: one long-lived Ray actor per slot, over every GPU of a Ray cluster.

Over 350 lines as one backend: its preflight, the actor, placement and replacement of actors
whose node died are Ray's detail and belong together.

The driver (this process: study, journal, strategy, scheduler) stays the journal's single
writer; Ray only places work. Each slot is an actor asking for its share of a GPU
(`num_gpus = 1 / trials_per_device`, `num_cpus = 1` for a CPU slot). It runs `setup(device)`
once (for training: the data onto its device) and then trials one at a time, each run as a
local worker runs it (tunetorch.executors.device.run_task): the same synchronised device time,
booked in the node's device ledger (tunetorch.executors.ledger), keyed by (Ray node id, GPU id).

Streaming: a trial is one call of the actor's generator method `run`; the task runs in a
thread of the actor and every event it emits ("epoch", then "done") is yielded back as it
happens, so the driver reads per-epoch results while the trial trains. With decide=True the
task's emit("epoch") waits for the driver's `decide(slot, stop)`, a second method call that
reaches the actor while `run` is still streaming (the actor is threaded).

Start: the pool waits (up to `start_timeout`) for its actors to be placed and set up, so the
search loop finds idle slots at once; an actor the cluster cannot place yet joins when it is.

Faults: a trial whose actor or node dies yields a "died" event for that trial (the search
loop retries it under tuner.max_retries) and a replacement actor is asked for. The slot is
idle again only once the replacement has been placed and set up, so a trial is never handed
to an actor that has nowhere to run; a slot whose replacements keep dying is given up.

Logical GPUs: when Ray grants a GPU id but CUDA_VISIBLE_DEVICES points at no real device
(a test cluster declaring num_gpus without hardware), the actor trains on the CPU and still
books its time to that GPU id, so GPU scheduling and GPU-minute sharing work without a GPU.

Why one long module: the actor, its event stream, placement and the replacement of lost actors
are one protocol with the driver; they are read together or not at all.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunetorch.errors import EnvironmentFault, UsageError
from tunetorch.executors.base import Event, Executor, Setup, Slot, Task, raise_fault
from tunetorch.executors.device import device_name, reason, run_task, setup_event
from tunetorch.executors.layout import Layout
from tunetorch.executors.ledger import DeviceLedger
from tunetorch.words import count

MAX_START_FAILURES = 3  # a slot whose new actor dies this many times before it is ready is given up
CONNECT_TIMEOUT_S = 5.0
START_TIMEOUT_S = 300.0  # how long to wait for the cluster to place the first actors (autoscaling)


# --- the actor (runs on the cluster's nodes) ------------------------------------------------
class SlotActor:
    def __init__(self, setup: Setup, task: Task, decide: bool, ledger_name: str, slot: int):
        self._setup, self._task, self._decide = setup, task, decide
        self._ledger_name, self._slot = ledger_name, slot
        self._answers: queue.SimpleQueue = queue.SimpleQueue()

    def start(self) -> dict:
        """Place the slot: find its device, set up once; returns where it landed."""
        import ray

        node = ray.get_runtime_context().get_node_id()
        gpu_ids = ray.get_gpu_ids()
        if gpu_ids:
            held = f"cuda:{gpu_ids[0]}"  # the GPU this slot holds on its node, as Ray numbers it
            import torch

            # Ray points CUDA_VISIBLE_DEVICES at the granted GPU: it is cuda:0 in here.
            self.device = "cuda:0" if torch.cuda.is_available() else "cpu"
            if self.device == "cuda:0":
                torch.cuda.set_device(self.device)
                name = device_name(self.device)
            else:
                name = f"logical GPU {gpu_ids[0]} (no CUDA device visible: trains on the CPU)"
        else:
            held = self.device = "cpu"
            name = device_name("cpu")
        self.state = self._setup(self.device)
        self.held, self.node = held, node
        self._ledger = DeviceLedger(Path(tempfile.gettempdir()) / self._ledger_name, node, held)
        return {"node": node, "device": held, "device_name": name, "pid": os.getpid()}

    def run(self, number: int, params: dict):
        """One trial; yields ("epoch", payload) as the task reports them, then ("done", payload)."""
        events: queue.SimpleQueue = queue.SimpleQueue()
        while not self._answers.empty():  # a decision sent after the last trial ended
            self._answers.get_nowait()

        def emit(kind: str, payload: Any) -> bool:
            events.put((kind, payload))
            if not (self._decide and kind == "epoch"):
                return False
            return bool(self._answers.get())

        def work() -> None:
            key = f"{os.getpid()}:{self._slot}:{number}"
            done = run_task(
                self._task, self.state, number, params, emit, self.device, self._ledger, key, self.node
            )
            events.put(("done", done))

        threading.Thread(target=work, daemon=True, name=f"trial-{number}").start()
        while True:
            kind, payload = events.get()
            yield kind, payload
            if kind == "done":
                return

    def decide(self, stop: bool) -> None:
        self._answers.put(bool(stop))

    def cleanup(self) -> None:
        shutil.rmtree(Path(tempfile.gettempdir()) / self._ledger_name, ignore_errors=True)


# --- the driver side ------------------------------------------------------------------------
@dataclass(kw_only=True)
class _RaySlot(Slot):
    # device: "cuda:<id>" of the GPU it holds on its node, "cpu"; known once placed
    options: dict  # the actor's resource request
    node: str | None = None
    pid: int | None = None  # the actor's process on its node
    actor: Any = None
    starting: Any = None  # the ObjectRef of actor.start(), until it resolves
    stream: Any = None  # the ObjectRefGenerator of the trial it runs
    ready: bool = False
    start_failures: int = 0
    lost: bool = False


class RayPool(Executor):
    """Ray actors over slots. submit() to an idle slot; next_event() to hear back."""

    slots: list[_RaySlot]

    def __init__(
        self,
        options: list[dict],
        setup: Setup,
        task: Task,
        decide: bool = False,
        owns_ray: bool = False,
        start_timeout: float = START_TIMEOUT_S,
    ):
        import ray

        self._ray = ray
        self._owns_ray = owns_ray
        self._decide = decide
        self._ledger_name = f"tunetorch-ledger-{uuid.uuid4().hex[:12]}"
        self._actor_class = ray.remote(max_concurrency=4)(SlotActor)
        self._setup, self._task = setup, task
        self._pending: deque[Event] = deque()
        self.slots = [
            _RaySlot(index=i, options=o, device="cpu" if "num_gpus" not in o else "cuda")
            for i, o in enumerate(options)
        ]
        for slot in self.slots:
            self._start(slot)
        self._wait_started(start_timeout)

    def _wait_started(self, timeout: float) -> None:
        """Wait until every actor is set up (or cannot be); after `timeout`, go on with those
        that are, the others join when placed. A setup that fails (or refuses) ends the wait: the
        search loop reads its "setup_failed" ("setup_refused") event and stops."""
        deadline = time.monotonic() + timeout
        while any(s.starting is not None for s in self.slots) and time.monotonic() < deadline:
            if self._setup_ended():
                return
            self._collect(min(1.0, max(0.0, deadline - time.monotonic())))
        if not any(s.ready for s in self.slots) and not self._setup_ended():
            want = self.slots[0].options if self.slots else {}
            self.close()
            raise EnvironmentFault(
                f"the Ray cluster placed none of {len(self.slots)} slot actors "
                f"({want} each) in {timeout:.0f} s"
            )

    def _setup_ended(self) -> bool:
        return any(e.kind in ("setup_failed", "setup_refused") for e in self._pending)

    def pending_slots(self) -> int:
        """Slots whose actor is being placed or set up (a replacement after a death): not idle yet."""
        return sum(s.starting is not None for s in self.slots)

    def driver_device(self) -> str:
        """This machine's GPU, else the CPU: the slots' devices may be other machines' GPUs."""
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"

    def _start(self, slot: _RaySlot) -> None:
        if slot.actor is not None:
            try:
                self._ray.kill(slot.actor, no_restart=True)
            except Exception:
                pass  # already gone with its node
        slot.actor = self._actor_class.options(**slot.options).remote(
            self._setup, self._task, self._decide, self._ledger_name, slot.index
        )
        slot.starting = slot.actor.start.remote()
        slot.stream, slot.number, slot.ready = None, None, False

    # --- dispatch --------------------------------------------------------------------
    def idle_slots(self) -> list[int]:
        return [s.index for s in self.slots if s.ready and s.number is None]

    def submit(self, slot: int, number: int, params: dict) -> str:
        s = self.slots[slot]
        assert s.ready and s.number is None, f"slot {slot} is not idle"
        s.number = number
        s.stream = s.actor.run.remote(number, params)
        return s.device

    def decide(self, slot: int, stop: bool) -> None:
        s = self.slots[slot]
        if self._decide and s.actor is not None and s.number is not None:
            s.actor.decide.remote(bool(stop))

    def next_event(self, timeout: float = 1.0) -> Event | None:
        """The next event from any actor, or None after `timeout` seconds without one.

        A slot's trial ends (idle again, or a replacement actor asked for) when its "done" or
        "died" is handed out, not when it is read: until the search loop has recorded the
        trial, the trial still counts as in flight for its budget.
        """
        if not self._pending:
            self._collect(timeout)
        if not self._pending:
            return None
        event = self._pending.popleft()
        s = self.slots[event.slot]
        if event.number is not None and s.number == event.number:
            if event.kind == "done":
                s.number = None
                s.busy_seconds += event.payload.wall_seconds
            elif event.kind == "died":
                s.number = None
                self._start(s)  # a replacement, idle once placed and set up
        if event.kind == "done":
            raise_fault(event)  # a trial that could not write its weights stops the study
        return event

    def _collect(self, timeout: float) -> None:
        owner: dict[Any, tuple[_RaySlot, bool]] = {}  # what to wait on -> (its slot, is it a start)
        for s in self.slots:
            if s.starting is not None:
                owner[s.starting] = (s, True)
            elif s.stream is not None:
                owner[s.stream] = (s, False)
        if not owner:
            time.sleep(min(timeout, 0.05))
            return
        ready, _ = self._ray.wait(list(owner), num_returns=1, timeout=timeout)
        if ready and len(owner) > 1:  # take everything that is ready now, not one per call
            ready, _ = self._ray.wait(list(owner), num_returns=len(owner), timeout=0)
        for ref in ready:
            s, starting = owner[ref]
            if starting:
                self._started(s)
            else:
                self._read(s)

    def _started(self, s: _RaySlot) -> None:
        ray = self._ray
        try:
            info = ray.get(s.starting)
        except ray.exceptions.RayTaskError as e:  # setup itself raised (or refused): the study cannot go on
            s.starting = None
            cause = getattr(e, "cause", None)
            failed = Event("setup_failed", s.index, payload=str(e))
            self._pending.append(setup_event(s.index, cause) if isinstance(cause, BaseException) else failed)
            return
        except ray.exceptions.RayError as e:  # the new actor died before it was ready
            s.starting = None
            s.start_failures += 1
            self._pending.append(Event("died", s.index, payload=self._death(s, e)))
            if s.start_failures < MAX_START_FAILURES:
                self._start(s)
            else:
                s.lost = True
            return
        s.starting, s.ready, s.start_failures = None, True, 0
        s.device, s.device_name, s.node, s.pid = (
            info["device"],
            info["device_name"],
            info["node"],
            info["pid"],
        )
        self._pending.append(Event("ready", s.index, payload=s.device_name))

    def _read(self, s: _RaySlot) -> None:
        ray = self._ray
        try:
            kind, payload = ray.get(next(s.stream))
        except StopIteration:  # ended without "done": cannot happen unless run() itself broke
            kind, payload = "died", "the trial's stream ended without a result"
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)  # run() itself raised, not the task: a bug
            kind, payload = (
                "died",
                reason(cause) if isinstance(cause, BaseException) else str(e).splitlines()[0],
            )
        except ray.exceptions.RayError as e:
            kind, payload = "died", self._death(s, e)
        if kind in ("done", "died"):
            s.stream = None  # nothing more to read from it
        if kind == "died":
            s.ready = False  # no new trial for it: it is replaced when its "died" is handed out
        self._pending.append(Event(kind, s.index, s.number, payload))

    def _death(self, s: _RaySlot, e: Exception) -> str:
        node = s.node or "?"
        alive = {n["NodeID"] for n in self._safe_nodes() if n.get("Alive")}
        where = f"node {node[:12]}" + ("" if node in alive or node == "?" else " (the node is gone)")
        return f"Ray actor on {where} died ({type(e).__name__})"

    def _safe_nodes(self) -> list[dict]:
        try:
            return self._ray.nodes()
        except Exception:
            return []

    def close(self, timeout: float = 10.0) -> None:
        """Stop every actor. In-flight trials are abandoned."""
        ray = self._ray
        if not ray.is_initialized():
            return
        idle = [s.actor.cleanup.remote() for s in self.slots if s.ready and s.number is None]
        if idle:
            ray.wait(idle, num_returns=len(idle), timeout=min(timeout, 2.0))
        for s in self.slots:
            if s.actor is not None:
                try:
                    ray.kill(s.actor, no_restart=True)
                except Exception:
                    pass
                s.actor = None
            s.ready, s.number, s.stream, s.starting = False, None, None, None
        if self._owns_ray:
            _shutdown()


def _slot_options(layout: Layout, gpus: int, address: str | None) -> list[dict]:
    """Every slot's resource request: the layout (tunetorch.executors.layout) on the cluster's GPUs.
    Under Ray a list in `tuner.devices` says how many GPUs to use: indices mean nothing across nodes."""
    if layout.listed is not None and gpus < len(layout.listed):
        n = len(layout.listed)
        where = "a local Ray cluster" if address is None else f"the Ray cluster at {address}"
        raise UsageError(
            f"tuner.devices: {list(layout.listed)!r} asks for {count(n, 'GPU')} but {where} has {gpus}"
        )
    used = 0 if layout.devices == "cpu" else gpus if layout.listed is None else len(layout.listed)
    gpu = {"num_gpus": 1.0 / layout.trials_per_device, "num_cpus": 0}
    return [{"num_cpus": 1} if g is None else dict(gpu) for g in layout.slots(range(used))]


_joined_here = False  # ray.init was called by _join (and not shut down since): ours to end


def preflight(tuner: Any) -> None:
    """Every check of the Ray backend, made before the study directory is (tune calls this first):
    Ray installed, the address answering, the cluster joined, enough GPUs for `tuner.devices`.
    UsageError (one line) otherwise. Joins once: `start` after it uses the same cluster."""
    _join(Layout.of(tuner), tuner.ray.address)


def start(tuner: Any, setup: Setup, task: Task, decide: bool = False) -> RayPool:
    """Join the cluster at `tuner.ray.address` (None: a local one, started here) and place the
    slots' actors. The checks are preflight's; a cluster joined already is used as it is."""
    options, owns = _join(Layout.of(tuner), tuner.ray.address)
    try:
        return RayPool(options, setup, task, decide=decide, owns_ray=owns)
    except BaseException:
        if owns:
            _shutdown()
        raise


def _join(layout: Layout, address: str | None) -> tuple[list[dict], bool]:
    """Join (or start) the cluster; returns (each slot's resource request, whether this process
    started Ray and so ends it)."""
    global _joined_here
    try:
        import ray
    except ImportError:
        raise UsageError("tuner.backend: 'ray' needs Ray installed: pip install 'tunetorch[ray]'") from None
    if not ray.is_initialized():
        _joined_here = False
        if address is not None:
            _probe(address)
        try:
            # None: a private instance, never a stale one found on this machine
            ray.init(
                address=address or "local",
                log_to_driver=False,
                logging_level="ERROR",
                include_dashboard=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"tuner.ray.address: {address!r}: cannot join a Ray cluster ({first})") from None
        _joined_here = True
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        return _slot_options(layout, gpus, address), _joined_here
    except UsageError:
        _shutdown()
        raise


def _shutdown() -> None:
    """End Ray if this process started it (_join), else leave it be."""
    global _joined_here
    if _joined_here:
        import ray

        ray.shutdown()
        _joined_here = False


def _probe(address: str) -> None:
    """Refuse an address nothing answers at in seconds: ray.init retries one for minutes."""
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS", "")
        if not target or target == "auto":
            current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
            try:
                target = current.read_text().strip()
            except OSError:
                raise UsageError(
                    "tuner.ray.address: 'auto' found no running Ray cluster on this machine "
                    "(start one with `ray start --head`, or give its host:port)"
                ) from None
    if target.startswith("local") or "://" in target and not target.startswith("ray://"):
        return
    hostport = target.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"tuner.ray.address: {address!r} is not auto or host:port")
    if not 1 <= int(port) <= 65535:
        raise UsageError(f"tuner.ray.address: {address!r}: port {port} is not 1..65535")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise UsageError(
            f"tuner.ray.address: {address!r}: no Ray cluster answers at {host}:{port} ({e.strerror or e})"
        ) from None
