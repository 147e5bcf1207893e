"""The spine: the way every record takes, and the formats both ends of each hop import.

    services ── SocketHandler / DatagramHandler / appliance.client (codec: frames, pickle)
       │
       ▼
    ingest ── decode → normalise (record) → seq → journal (durable) → ZeroMQ PUB (link.TOPIC)
       │
       ├─► store.writer   ┐ each a SubscriberLoop (subscriber): live batches from PUB, gaps
       ├─► neelix         │ and restarts filled from the journal from its cursor on, cursor
       └─► forwarding     ┘ stored with its effect → exactly once (retention drops passed
                            segments)

`record` is the schema, `codec` the wire and internal encodings, `journal` and `retention` the
durable log, `subscriber` the loop every subscriber shares, `link` the ZeroMQ topic and the
relay link's message kinds, `stats` the per-process counters files, `keys` CurveZMQ keys,
`emit` one record sent to an ingestor as a service sends it.
"""
