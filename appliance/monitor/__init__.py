"""The appliance watching itself: the supervisord event listener program, the health snapshot
and its Prometheus rendering (served by the web, printed by `appliance status`)."""
