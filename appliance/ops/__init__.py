"""Operator commands that are not programs: status, emit, query, tail, purge, `appliance init`,
key pairs and the import of old ps.herald databases."""
