import pytest

from support import Instance


@pytest.fixture
def instance(tmp_path):
    """A fresh appliance instance under its own supervisord; stopped by PID afterwards."""
    made = []

    def make(**settings) -> Instance:
        inst = Instance(tmp_path / f"instance{len(made)}", **settings)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.stop()
