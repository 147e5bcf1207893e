import pytest

from appliance.harness import postgres as pg
from appliance.harness.instance import Instance

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the whole run (initdb + pg_ctl as the unprivileged
    `postgres` user, 127.0.0.1, a free port), stopped by its PID at the end."""
    if pg.bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    server = pg.PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=ENGINES)
def store(request):
    """Run the test on each engine: None (SQLite, the default) or make(), which gives a
    fresh PostgreSQL database's URL for each call."""
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("postgres_server")
    return server.create_database


@pytest.fixture
def instance(tmp_path, request):
    """A fresh appliance instance under its own supervisord; stopped by PID afterwards. In
    a test parametrised by `store`, each instance gets that engine (its own database)."""
    made = []
    store_of = request.getfixturevalue("store") if "store" in request.fixturenames else None

    def make(**settings) -> Instance:
        if store_of is not None and "store" not in settings:
            settings["store"] = store_of()
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
