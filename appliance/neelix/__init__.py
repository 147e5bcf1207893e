"""neelix, the alerting program: the rules file (rulebook, actions, maintenance), the pure
cores (rules, heartbeats, notice), its state and outbox, the couriers and the transports that
send mail, webhooks, alert records and commands; `history` is the read-only view the web
shows, `commands` the operator commands (dry run, snoozes)."""
