"""`[store] url` chooses the engine for every process: SQLite by default (and the older
`[writer] db` keeps working), PostgreSQL with the password from an environment variable or a
file, never from the INI; the SQLite path needs no PostgreSQL client at all."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import config
from appliance.errors import ConfigError
from appliance.store.query import QueryError
from appliance.store.tsquery import tsquery

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "conf" / "appliance.ini"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return config.load(path)


def test_sqlite_is_the_default_and_the_old_writer_db_still_chooses_the_file(tmp_path):
    default = load(tmp_path, "").store.url
    assert (default.engine, default.path) == ("sqlite", tmp_path / "var" / "herald.sqlite")
    old = load(tmp_path, "[writer]\ndb = /elsewhere/h.sqlite\n")
    assert old.store.url.path == Path("/elsewhere/h.sqlite") == old.writer.db
    new = load(tmp_path, "[store]\nurl = sqlite:///{var}/other.sqlite\n")
    assert new.store.url.path == tmp_path / "var" / "other.sqlite" == new.writer.db
    assert new.store.admin_url == new.store.url
    with pytest.raises(ConfigError) as both:
        load(tmp_path, "[writer]\ndb = a.sqlite\n[store]\nurl = sqlite:///b.sqlite\n")
    assert (both.value.section, both.value.key) == ("writer", "db")


def test_postgresql_takes_its_password_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HERALD_DB_PASSWORD", "s3cret")
    loaded = load(tmp_path, "[store]\nurl = postgresql://herald@db.example.org:5433/herald"
                  "?sslmode=verify-full\npassword_env = HERALD_DB_PASSWORD\n"
                  "admin_url = postgresql://owner@db.example.org/herald\n")
    url = loaded.store.url
    assert url.engine == "postgresql" and loaded.writer.db is None
    assert url.display == "postgresql://herald@db.example.org:5433/herald?sslmode=verify-full"
    assert url.connect_args() == {"conninfo": url.display, "password": "s3cret",
                                  "connect_timeout": "10"}
    assert loaded.store.admin_url.display == "postgresql://owner@db.example.org/herald"
    assert loaded.store.admin_url.password == "s3cret"  # password_env, unless its own is given
    (tmp_path / "conf" / "pw").write_text("from-a-file\n")
    from_file = load(tmp_path, "[store]\nurl = postgres://h@db/herald\npassword_file = pw\n")
    assert from_file.store.url.password == "from-a-file"


@pytest.mark.parametrize(("text", "message"), [
    ("url = postgresql://herald:hunter2@db/herald", "put no password in the URL"),
    ("url = postgresql://herald@db/", "names its database"),
    ("url = mysql://herald@db/herald", "starts with sqlite:/// or postgresql://"),
    ("url = sqlite://relative.sqlite", "three slashes"),
    ("url = postgresql://h@db/herald\npassword_env = HERALD_NOT_SET_ANYWHERE", "is not set"),
    ("url = postgresql://h@db/herald\npassword_file = missing", "cannot read password_file"),
    ("url = postgresql://h@db/herald\nadmin_url = sqlite:///x.sqlite", "same engine"),
])
def test_bad_store_settings_are_refused_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, f"[store]\n{text}\n")
    assert message in str(refused.value) and refused.value.section == "store"
    assert "hunter2" not in str(refused.value)


def test_the_search_syntax_becomes_a_tsquery():
    assert tsquery("connection-refused db01:5432") == \
        "(('connection' <-> 'refused') & ('db01' <-> '5432'))"
    assert tsquery('"paid by" card* OR NOT_a_word') == \
        "((('paid' <-> 'by') & 'card':*) | ('not' <-> 'a' <-> 'word'))"
    assert tsquery("a NOT (b OR c)") == "('a' & !('b' | 'c'))"
    for bad in ('"open', "AND", "(a", "a OR", "NOT a", "a:b AND c", "a NEAR b"):
        with pytest.raises(QueryError):
            tsquery(bad)


def test_the_sqlite_path_needs_no_postgresql_client(tmp_path):
    # psycopg made unimportable, as on a machine without it: SQLite still works end to end
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "import appliance.store.writer, appliance.web.app, appliance.neelix.matcher, "
            "appliance.ops.commands, appliance.ops.store_import\n"
            "from appliance.store.engine import open_store\n"
            "from appliance.store.url import parse\n"
            "engine = open_store(parse('sqlite:///x.sqlite', __import__('pathlib').Path('.')))\n"
            "engine.open(create=True)\n"
            "assert engine.store_batch([], ('w', 'o', 1), None) == 0\n"
            "assert engine.load_cursor('w', 'o') == 1\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr


def test_the_shared_web_secret_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from appliance.web.auth import shared_secret
    assert shared_secret(None, "") is None  # neither: each web makes var/web.secret
    key = tmp_path / "web.secret"
    key.write_text("a" * 64 + "\n")
    monkeypatch.setenv("HERALD_WEB_SECRET", "a" * 64)
    assert shared_secret(key, "") == shared_secret(None, "HERALD_WEB_SECRET")
    assert len(shared_secret(key, "")) == 32
    for file, env, message in ((key, "HERALD_WEB_SECRET", "not both"),
                               (tmp_path / "missing", "", "make one with"),
                               (None, "HERALD_NO_SUCH_SECRET", "is not set")):
        with pytest.raises(ValueError, match=message):
            shared_secret(file, env)
    key.write_text("too short")
    with pytest.raises(ValueError, match="at least 32"):
        shared_secret(key, "")
