"""The short form of `make faults` inside `make test`: one fault per kind of dependency (the
worker, Redis, Postgres, the network between web and Postgres), smaller storms."""

import pytest

from loadtests import faults


@pytest.mark.parametrize("name", faults.QUICK_SCENARIOS)
def test_the_stack_recovers_with_every_invariant(name):
    results = faults.SCENARIOS[name](faults.QUICK)
    print("\n" + faults.table(results))
    for result in results:
        assert result.oversold == 0 and result.duplicates == 0
        assert result.stuck == 0 and result.phantoms == 0
        assert result.violations == []
        assert result.recovery is not None and result.recovery <= faults.RECOVERY_TARGET
        # The kill landed inside a batch's transaction, as the scenario says.
        assert "while 0 batch" not in result.detail, result.detail
