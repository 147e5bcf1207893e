"""The ingestor program: TCP/UDP listeners, decoder worker processes, the journal's only
writer and the ZeroMQ publisher; plus the relay where downstream appliances deliver batches."""
