"""Herald appliance: collects Python `logging` records over the wire, journals them durably,
and fans them out over ZeroMQ to the SQLite writer, the forwarder and the neelix matcher."""

__version__ = "0.1.0"
