"""The herald database: its schema, the writer program that fills it, the read-only reader
the web and the operator commands query it through, query building and purge."""
