"""The machines: a hypothesis state machine checks the backend against a simple model after
every step, and a differential machine demands the same answers as the in-memory reference
backend for the same operations. Tune them with ``state_machine_examples``,
``state_machine_steps``, ``differential_examples`` and ``differential_steps``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from jobqueue.testing.contract.support import ContractBase
from jobqueue.testing.differential import make_differential_machine
from jobqueue.testing.state_machine import make_state_machine


class MachineContract(ContractBase):
    """The state machine and the differential machine, as two tests."""

    # -- exact agreement with the reference backend ------------------------------------------------

    def test_differential_matches_the_reference_backend(self) -> None:
        from hypothesis.stateful import run_state_machine_as_test

        machine = make_differential_machine(self.make_backend, self.dispose_backend)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.differential_examples,
                stateful_step_count=self.differential_steps,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )

    # -- the model-checked state machine -----------------------------------------------------------

    def test_state_machine_against_model(self) -> None:
        from hypothesis.stateful import run_state_machine_as_test

        machine = make_state_machine(self.make_backend, self.dispose_backend)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.state_machine_examples,
                stateful_step_count=self.state_machine_steps,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
