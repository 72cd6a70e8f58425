"""The contract every backend meets, as one pytest mixin, ``BackendContract``, made of one
part per part of the seam. See ``jobqueue.testing``.

* ``support`` -- ``ContractBase``: the hooks to override and the fixtures every part uses
* ``apply`` -- ``ApplyContract``: the seam itself on the raw store: the guarded ``apply``
  (guards, conflicts, moves, the claim in the same step), scan, expired, delete, housekeep
* ``storage`` -- ``StorageContract``: submit and get; each move one atomic step
* ``fencing`` -- ``FencingContract``: guards, lease tokens, idempotent repeats
* ``ordering`` -- ``OrderingContract``: claim order, priority, delays, caps, pauses, listings
* ``dedup`` -- ``DedupContract``: unique keys
* ``waits`` -- ``WaitsContract``: ``wait_for_work``, ``wait_for_finish``
* ``handoff`` -- ``HandoffContract``: the optional ``wait_for_claim``; not in
  ``BackendContract``: a backend that offers the capability adds this part to its test class
* ``schedules`` -- ``ScheduleContract``: periodic schedules' tick claims, overlap
* ``schedule_records`` -- ``ScheduleRecordContract``: schedule pauses, records, racing schedulers
* ``control`` -- ``ControlContract``: cancel, retry, purge, promote, bulk cancel
* ``operator`` -- ``OperatorContract``: lease deadlines, heartbeats, dispatchers; pure reads
* ``stalls`` -- ``StallContract``: expired leases recovered and reported; retention
* ``outcomes`` -- ``OutcomeContract``: outcome counts per minute, counts by name
* ``machines`` -- ``MachineContract``: the model-checked state machine, the differential one

Each part subclasses ``ContractBase``, so one part can run alone (``class
TestMySchedules(ScheduleContract)`` with ``make_backend``).
"""

from __future__ import annotations

from jobqueue.testing.contract.apply import ApplyContract
from jobqueue.testing.contract.control import ControlContract
from jobqueue.testing.contract.dedup import DedupContract
from jobqueue.testing.contract.fencing import FencingContract
from jobqueue.testing.contract.flows import FlowContract
from jobqueue.testing.contract.handoff import HandoffContract
from jobqueue.testing.contract.machines import MachineContract
from jobqueue.testing.contract.operator import OperatorContract
from jobqueue.testing.contract.ordering import OrderingContract
from jobqueue.testing.contract.outcomes import OutcomeContract
from jobqueue.testing.contract.schedule_records import ScheduleRecordContract
from jobqueue.testing.contract.schedules import ScheduleContract
from jobqueue.testing.contract.stalls import StallContract
from jobqueue.testing.contract.storage import StorageContract
from jobqueue.testing.contract.support import ContractBase, json_values, spec
from jobqueue.testing.contract.waits import WaitsContract


class BackendContract(
    ApplyContract,
    StorageContract,
    FencingContract,
    OrderingContract,
    DedupContract,
    WaitsContract,
    ScheduleContract,
    ScheduleRecordContract,
    ControlContract,
    OperatorContract,
    StallContract,
    OutcomeContract,
    MachineContract,
    FlowContract,
):
    """Every required part of the contract in one mixin (a backend with the optional hand-off
    adds ``HandoffContract``: ``class TestMine(BackendContract, HandoffContract)``, so no
    test is skipped for a capability a backend does not claim). Implement ``make_backend``;
    optionally override ``dispose_backend``, ``open_same_store`` and the machines' example and
    step counts (``state_machine_examples`` to trade thoroughness for speed)."""


__all__ = [
    "ApplyContract",
    "BackendContract",
    "ContractBase",
    "ControlContract",
    "DedupContract",
    "FencingContract",
    "FlowContract",
    "HandoffContract",
    "MachineContract",
    "OperatorContract",
    "OrderingContract",
    "OutcomeContract",
    "ScheduleContract",
    "ScheduleRecordContract",
    "StallContract",
    "StorageContract",
    "WaitsContract",
    "json_values",
    "spec",
]
