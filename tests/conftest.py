import pytest

from appliance.harness.instance import Instance


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


@pytest.fixture
def mail():
    """A real SMTP server (aiosmtpd) on its own port; neelix instances are pointed at it."""
    from alert_sinks import MailSink
    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def neelix(instance, mail):
    """make(rules) → a started instance whose neelix mails `mail` and whose rules are `rules`."""
    def make(rules: str, *, programs: tuple[str, ...] = ("ingestor", "writer", "neelix"),
             shards: int = 1, **settings) -> Instance:
        inst = instance(**settings)
        if shards > 1:
            inst.scale("neelix", shards)
        inst.set(neelix={"smtp_host": "127.0.0.1", "smtp_port": mail.port,
                         "check_interval": "500ms"})
        inst.rules_path.write_text(rules)
        return inst.start(programs)
    return make
