"""What tests and benchmarks use to run the real thing: an instance under its own supervisord,
services logging through the stdlib handlers or appliance.client, readiness by probe record.
Not used by the appliance itself."""
