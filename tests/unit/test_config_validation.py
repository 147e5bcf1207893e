"""Every config value goes through a converter; a wrong one names file, section and key; the
stage table gives the defaults; `appliance init` writes what `load` accepts; the repo's own
instance files are the templates rendered, with no drift."""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from appliance import config, converters
from appliance.errors import ConfigError
from appliance.ops import instance, templates
from appliance.stages import STAGES

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "appliance.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return caught.value


@pytest.mark.parametrize(("text", "section", "key"), [
    ("[ingestor]\nport = 70000\n", "ingestor", "port"),
    ("[ingestor]\nport = 0\n", "ingestor", "port"),
    ("[ingestor]\nbatch_delay = soon\n", "ingestor", "batch_delay"),
    ("[appliance]\nstage = MARS\n", "appliance", "stage"),
    ("[appliance]\nbind = example.com\n", "appliance", "bind"),
    ("[journal]\nfsync = maybe\n", "journal", "fsync"),
    ("[journal]\nsegment_bytes = 1.5MiB\n", "journal", "segment_bytes"),
    ("[writer]\nmax_rows = -1\n", "writer", "max_rows"),
    ("[ingestor]\nprot = 9010\n", "ingestor", "prot"),          # a typo is not a default
    ("[appliance]\nStage = TESTING\n", "appliance", "Stage"),    # nor is another case
    ("[web]\nport = 9020\n", "web", "port"),                     # DEVELOPMENT ingests there
])
def test_a_bad_value_or_unknown_key_names_file_section_and_key(tmp_path, text, section, key):
    path = write(tmp_path, text)
    error = refused(path)
    assert (error.path, error.section, error.key) == (str(path), section, key)
    assert str(path) in str(error) and f"[{section}]" in str(error)
    assert repr(key) in str(error)


def test_an_unknown_section_names_file_and_section(tmp_path):
    path = write(tmp_path, "[appliance]\nstage = TESTING\n[ingestr]\nport = 1\n")
    error = refused(path)
    assert str(path) in str(error) and "[ingestr]" in str(error) and "ingestor" in str(error)


@pytest.mark.parametrize("text", ["port = 1\n", "[appliance]\n[appliance]\n", "[x\n"])
def test_a_file_that_is_not_ini_names_the_file(tmp_path, text):
    path = write(tmp_path, text)
    assert str(path) in str(refused(path))
    assert str(tmp_path / "absent.ini") in str(refused(tmp_path / "absent.ini"))


def test_a_size_with_only_the_binary_suffix_is_a_config_error(tmp_path):
    error = refused(write(tmp_path, "[journal]\nsegment_bytes = 64ib\n"))
    assert error.key == "segment_bytes"


@pytest.mark.parametrize(("stage", "ingest", "web"), [
    ("TESTING", 9010, 9011), ("DEVELOPMENT", 9020, 9021), ("INTEGRATION", 9022, 9023),
    ("PRODUCTION", 9024, 9025), ("prod", 9024, 9025), ("TEST", 9010, 9011),
])
def test_default_ports_come_from_the_stage(tmp_path, stage, ingest, web):
    loaded = config.load(write(tmp_path, f"[appliance]\nstage = {stage}\n"))
    assert (loaded.ingestor.port, loaded.web.port) == (ingest, web)
    assert loaded.stage is STAGES[loaded.stage.name]
    assert (loaded.stage.ingest_port, loaded.stage.web_port) == (ingest, web)


def test_ports_can_be_overridden_but_not_to_the_same_value(tmp_path):
    loaded = config.load(write(tmp_path, "[ingestor]\nport = 19000\n[web]\nport = 19001\n"))
    assert (loaded.ingestor.port, loaded.web.port) == (19000, 19001)
    error = refused(write(tmp_path, "[ingestor]\nport = 19000\n[web]\nport = 19000\n"))
    assert "19000" in str(error) and "[web]" in str(error)


def test_paths_resolve_against_the_config_files_folder(tmp_path):
    loaded = config.load(write(tmp_path, ""))
    var = (tmp_path / "var").resolve()
    assert loaded.appliance.var_dir == var
    assert loaded.journal.dir == var / "journal"
    assert loaded.writer.db == var / "herald.sqlite"
    assert loaded.ingestor.publish == f"ipc://{var}/run/records.pub"
    loaded = config.load(write(tmp_path, "[appliance]\nvar_dir = data\n"
                                         "[writer]\ndb = /elsewhere/h.sqlite\n"))
    assert loaded.appliance.var_dir == (tmp_path / "conf" / "data").resolve()
    assert loaded.writer.db == Path("/elsewhere/h.sqlite")


def test_an_ipc_path_over_107_bytes_is_refused(tmp_path):
    deep = tmp_path / ("d" * 120)
    error = refused(write(tmp_path, f"[appliance]\nvar_dir = {deep}\n"))
    assert (error.section, error.key) == ("ingestor", "publish") and "107" in str(error)


def test_converters():
    assert converters.byte_size("64MiB") == 64 << 20
    assert converters.byte_size(" 64k ") == converters.byte_size("64KiB") == 65536
    assert converters.byte_size("1GB") == 1 << 30 and converters.byte_size("512") == 512
    assert converters.duration("250ms") == pytest.approx(0.25)
    assert converters.duration("2h") == 7200 and converters.duration("7d") == 7 * 86400
    assert converters.duration("30") == 30 and converters.duration("1.5m") == 90
    for text in ("true", "Yes", " on ", "1"):
        assert converters.boolean(text) is True
    for text in ("false", "NO", "off", "0"):
        assert converters.boolean(text) is False
    for convert, text in [(converters.byte_size, "lots"), (converters.byte_size, "-1"),
                          (converters.duration, "2 days"), (converters.duration, "-1s"),
                          (converters.boolean, "maybe"), (converters.boolean, ""),
                          (converters.port_number, "65536"), (converters.endpoint, "udp://x:1")]:
        with pytest.raises(ValueError):
            convert(text)


def test_init_writes_a_config_that_load_accepts(tmp_path):
    conf = instance.init(tmp_path / "inst", STAGES["TESTING"], ingest_port=19010,
                         web_port=19011, check_ports=False)
    loaded = config.load(tmp_path / "inst" / "conf" / "appliance.ini")
    assert (loaded.stage.name, loaded.ingestor.port, loaded.web.port) == \
        ("TESTING", 19010, 19011)
    assert loaded.appliance.var_dir == (tmp_path / "inst" / "var").resolve()
    assert (tmp_path / "inst" / "var" / "run").is_dir()
    assert "conf/appliance.ini" in conf.read_text() and "[unix_http_server]" in conf.read_text()
    instance.init(tmp_path / "plain", STAGES["PRODUCTION"], check_ports=False)
    loaded = config.load(tmp_path / "plain" / "conf" / "appliance.ini")
    assert (loaded.ingestor.port, loaded.web.port) == (9024, 9025)


def test_init_refuses_to_overwrite_without_force(tmp_path):
    instance.init(tmp_path / "inst", STAGES["TESTING"], ingest_port=19010, check_ports=False)
    ini = tmp_path / "inst" / "conf" / "appliance.ini"
    neelix = tmp_path / "inst" / "conf" / "neelix.ini"
    neelix.write_text("[mine]\nMSG = kept\n")
    with pytest.raises(ConfigError, match="already exists"):
        instance.init(tmp_path / "inst", STAGES["PRODUCTION"], check_ports=False)
    assert config.load(ini).ingestor.port == 19010
    instance.init(tmp_path / "inst", STAGES["PRODUCTION"], force=True, check_ports=False)
    assert config.load(ini).ingestor.port == 9024
    assert neelix.read_text() == "[mine]\nMSG = kept\n"  # the rules are the operator's


def test_init_refuses_ports_another_process_holds(tmp_path):
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            instance.init(tmp_path / "second", STAGES["TESTING"], ingest_port=port - 1 or 2,
                          web_port=port)
    message = str(caught.value)
    assert f"web port 127.0.0.1:{port}" in message and f"pid {os.getpid()}" in message
    assert "--web-port" in message and not (tmp_path / "second").exists()


def test_init_refuses_an_instance_whose_socket_path_is_too_long(tmp_path):
    sock = "/var/run/supervisor.sock"
    room = 107 - len(str(tmp_path) + "/") - len(sock)
    assert room > 2
    fits, too_long = tmp_path / ("a" * room), tmp_path / ("b" * (room + 1))
    assert len(str(fits) + sock) == 107
    instance.init(fits, STAGES["TESTING"], check_ports=False)
    with pytest.raises(ConfigError) as caught:
        instance.init(too_long, STAGES["TESTING"], check_ports=False)
    assert "too long" in str(caught.value) and "107" in str(caught.value)
    assert str(too_long) in str(caught.value)
    assert not too_long.exists()


def test_committed_supervisord_conf_is_the_rendered_template():
    assert (REPO / "supervisord.conf").read_text(encoding="utf-8") == \
        templates.render_in_place()


def test_committed_appliance_ini_is_the_rendered_template():
    rendered = templates.render_appliance_ini(STAGES["DEVELOPMENT"], None, None)
    assert (REPO / "conf" / "appliance.example.ini").read_text(encoding="utf-8") == rendered
    assert (REPO / "conf" / "neelix.example.ini").read_text(encoding="utf-8") == \
        templates.NEELIX_INI


@pytest.mark.parametrize(("text", "section", "key", "message"), [
    ("[DEFAULT]\nstage = TESTING\n", "DEFAULT", "", "[DEFAULT] section is not supported"),
    ("[writer]\ndb = /data/{instance}/herald.sqlite\n", "writer", "db", "only {var}"),
    ("[ingestor]\ndecoder_memory = 16MiB\n", "ingestor", "decoder_memory", "minimum of 128MiB"),
    ("[journal]\nsegment_bytes = 0\n", "journal", "segment_bytes", "minimum of 1MiB"),
    ("[ingestor]\ndecode_timeout = 0\n", "ingestor", "decode_timeout", "minimum of 100ms"),
])
def test_settings_that_would_misbehave_are_refused(tmp_path, text, section, key, message):
    path = tmp_path / "appliance.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert message in str(caught.value)
    assert (caught.value.section, caught.value.key) == (section, key)


def test_the_live_files_are_made_from_the_examples_once(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "appliance.example.ini").write_text("[appliance]\nstage = INTEGRATION\n")
    assert config.load(conf / "appliance.ini").stage.name == "INTEGRATION"
    live = conf / "appliance.ini"
    assert live.read_text() == "[appliance]\nstage = INTEGRATION\n"
    live.write_text("[appliance]\nstage = PRODUCTION\n")  # the operator's from now on
    (conf / "appliance.example.ini").write_text("[appliance]\nstage = TESTING\n")  # git pull
    assert config.load(live).stage.name == "PRODUCTION"
    assert sorted(p.name for p in conf.iterdir()) == ["appliance.example.ini", "appliance.ini"]


def test_the_clones_examples_are_what_a_first_run_starts_from():
    assert not (REPO / "conf" / "appliance.ini").exists() or \
        "conf/appliance.ini" in (REPO / ".gitignore").read_text()
    tracked = subprocess.run(["git", "ls-files", "conf"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked == ["conf/appliance.example.ini", "conf/neelix.example.ini"]
