"""The forwarder program: passes records to an upstream appliance (acked batches to its relay)
or to any SocketHandler receiver."""
