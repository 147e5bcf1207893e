"""The texts an instance is made of: its supervisord.conf, its appliance.ini (every setting with
its help, from config.SETTINGS) and the starter neelix.ini. `appliance init` writes them; the
repo's own supervisord.conf and conf/*.example.ini are them rendered for the clone.
"""

from __future__ import annotations

import textwrap

from appliance.config import FORWARDER, SECTIONS, SETTINGS
from appliance.stages import Stage, stage_named

# The repo's own supervisord.conf cannot name the interpreter the appliance was installed
# with (every clone has its own), so it runs the first python3 on a PATH that starts with the
# clone's .venv (the README's run command makes it): a supervisord started from that venv
# without activating it (systemd) must not run a system python3 that lacks zmq.
# `appliance start` puts its own interpreter's folder on supervisord's PATH too.
IN_PLACE_COMMAND = "/usr/bin/env python3 -m appliance"
IN_PLACE_SEARCH_PATH = "%(here)s/.venv/bin:%(ENV_PATH)s"

SUPERVISORD_TEMPLATE = """\
; Herald appliance instance, stage {stage}. Operate it with
;   supervisorctl -c {conf_hint} status|restart writer|tail -f ingestor|pid writer
; Paths go through %(here)s, so the folder can be moved as a whole.

[unix_http_server]
file=%(here)s/var/run/supervisor.sock
chmod=0700

[supervisorctl]
serverurl=unix://%(here)s/var/run/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisord]
logfile=%(here)s/var/log/supervisord.log
pidfile=%(here)s/var/run/supervisord.pid
childlogdir=%(here)s/var/log
directory=%(here)s
identifier=herald-{stage}

[program:ingestor]
command={command} ingestor -c %(here)s/conf/appliance.ini
environment={environment}
priority=10
autorestart=true
startsecs=1
startretries=5
stopsignal=TERM
stopwaitsecs=30
; SIGTERM goes to the ingestor alone (its decoders finish their chunks for its drain);
; a SIGKILL after stopwaitsecs takes the decoders with it.
killasgroup=true
redirect_stderr=true
stdout_logfile=%(here)s/var/log/%(program_name)s.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5

; Scale a subscriber with numprocs=N, process_name=%(program_name)s_%(process_num)d and
; --shard %(process_num)d/N: each record is then handled by exactly one of them.
[program:writer]
command={command} writer -c %(here)s/conf/appliance.ini --shard %(process_num)d/1
process_name=%(program_name)s
numprocs=1
environment={environment}
priority=20
autorestart=true
startsecs=1
startretries=5
stopsignal=TERM
stopwaitsecs=60
redirect_stderr=true
stdout_logfile=%(here)s/var/log/%(program_name)s_%(process_num)d.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5

[program:neelix]
command={command} neelix -c %(here)s/conf/appliance.ini --shard %(process_num)d/1
process_name=%(program_name)s
numprocs=1
environment={environment}
priority=20
autorestart=true
startsecs=1
startretries=5
stopsignal=TERM
stopwaitsecs=30
redirect_stderr=true
stdout_logfile=%(here)s/var/log/%(program_name)s_%(process_num)d.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5

[program:web]
command={command} web -c %(here)s/conf/appliance.ini
environment={environment}
priority=30
autorestart=true
startsecs=1
startretries=5
stopsignal=TERM
stopwaitsecs=10
redirect_stderr=true
stdout_logfile=%(here)s/var/log/%(program_name)s.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5

; Turns unexpected exits and FATAL states into alert records in the table (stdout is the
; listener protocol: its log is stderr).
[eventlistener:events]
command={command} events -c %(here)s/conf/appliance.ini
events=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL,TICK_5
environment={environment}
priority=5
autorestart=true
buffer_size=100
stderr_logfile=%(here)s/var/log/%(program_name)s.log
stderr_logfile_maxbytes=10MB
stderr_logfile_backups=5
"""


FORWARDER_PROGRAM = """\
[program:forwarder-{name}]
command={command} forwarder {name} -c %(here)s/conf/appliance.ini
environment={environment}
priority=20
autorestart=true
startsecs=1
startretries=5
stopsignal=TERM
stopwaitsecs=30
redirect_stderr=true
stdout_logfile=%(here)s/var/log/%(program_name)s.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
"""

TUNNEL_EXAMPLE = """\
; The ssh-tunnel way (no Curve needed; the tunnel encrypts): forward the upstream's relay
; (or, for socket mode, its ingest port) to a local port, kept up by supervisord:
;[program:tunnel]
;command=ssh -N -o ExitOnForwardFailure=yes -o ServerAliveInterval=30
;    -L 127.0.0.1:9019:127.0.0.1:9029 herald@core.example.org
;autorestart=true
;startsecs=5
"""


def environment(pythonpath: str, search_path: str = "") -> str:
    """A program's environment= line: where its code is, and where `python3` is looked up."""
    path = f'PATH="{search_path}",' if search_path else ""
    return f'{path}PYTHONPATH="{pythonpath}",PYTHONUNBUFFERED="1"'


def forwarder_program(name: str, command: str, pythonpath: str, search_path: str = "") -> str:
    """The supervisord program that runs [forwarder:NAME] of appliance.ini."""
    return FORWARDER_PROGRAM.format(name=name, command=command,
                                    environment=environment(pythonpath, search_path))


def render_supervisord(stage: Stage, command: str, pythonpath: str, conf_hint: str,
                       search_path: str = "") -> str:
    example = "".join(f";{line}\n" if line else ";\n" for line in forwarder_program(
        "core", command, pythonpath, search_path).splitlines())
    return SUPERVISORD_TEMPLATE.format(stage=stage.name, command=command,
                                       environment=environment(pythonpath, search_path),
                                       conf_hint=conf_hint) + (
        "\n; One program per [forwarder:NAME] section of conf/appliance.ini, e.g.:\n"
        f"{example}\n{TUNNEL_EXAMPLE}")


def render_in_place() -> str:
    """The repo's own supervisord.conf: an instance in the clone, stage DEVELOPMENT."""
    return render_supervisord(stage_named("DEVELOPMENT"), IN_PLACE_COMMAND, "%(here)s",
                              "supervisord.conf", IN_PLACE_SEARCH_PATH)


def render_appliance_ini(stage: Stage, ingest_port: int | None, web_port: int | None,
                         store: str | None = None) -> str:
    """Every setting with its help; the stage, chosen ports and store set, the rest
    commented."""
    chosen = {("appliance", "stage"): stage.name}
    if store:
        chosen[("store", "url")] = store
    if ingest_port:
        chosen[("ingestor", "port")] = str(ingest_port)
    if web_port:
        chosen[("web", "port")] = str(web_port)
    lines = ["; Herald appliance settings. Every key is optional; the commented value is the",
             "; default. Unknown keys and bad values stop the processes with a clear message.",
             "; Relative paths are relative to this file's folder; {var} is var_dir.", ""]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for setting in (s for s in SETTINGS if s.section == section):
            lines.extend("; " + line for line in textwrap.wrap(setting.help, 94))
            value = chosen.get((section, setting.key))
            if value is not None:
                lines.append(f"{setting.key} = {value}")
            else:
                lines.append(f";{setting.key} = {setting.default}")
        lines.append("")
    lines += ["; One section per upstream appliance, each run by its own [program:forwarder-NAME]",
              "; in supervisord.conf (see the commented example there), e.g.:",
              f";[{FORWARDER.replace('NAME', 'core')}]"]
    for setting in (s for s in SETTINGS if s.section == FORWARDER):
        lines.extend(";; " + line for line in textwrap.wrap(setting.help, 93))
        lines.append(f";{setting.key} = {setting.default}")
    lines.append("")
    return "\n".join(lines)


NEELIX_INI = """\
; neelix rules: what to tell whom when a service logs something alarming or goes silent.
; Changes take effect when neelix restarts (supervisorctl -c supervisord.conf restart neelix:*);
; try them first with:  appliance neelix test -c conf/appliance.ini --since 1d
; Fields in templates and rule keys are the record's columns (system_id, sub_system_id,
; logger, message, exc_text, levelname, …) plus event, source, key, system, count,
; suppressed, summary, since, time, url.
;
; The old per-system format keeps working (mail through [neelix] smtp_host/smtp_port).
; MSG is a text searched in the message and in the traceback (exc_text, stack_info), so
; MSG = Traceback fires for logger.exception(...); AGE mails when the system is silent:
; [ch2eu]
; MAIL_TO = ops@example.org, oncall@example.org
; MSG = Traceback
; AGE = 60*60*2
;
; [action:ops-mail]
; type = mail
; to = ops@example.org
; host = smtp.example.org
; port = 587
; ; security: none, starttls or tls
; security = starttls
; user = neelix
; ; the password comes from the environment or a file, never from this file
; password_env = NEELIX_SMTP_PASSWORD
; subject = [herald] ${summary}
;
; [action:chat]
; type = webhook
; url = https://hooks.example.org/services/T000/B000/XXXX
; ; format: json (the default) or slack
; format = slack
;
; [action:table]
; ; an alert record in the web table (and forwarded upstream like any record)
; type = record
; level = WARNING
;
; [rule:errors]
; level = ERROR
; ; optional conditions: system, host, logger, package_version (glob patterns),
; ; message and traceback (regular expressions), field.NAME (exact value of any field)
; system = ch2*, web-01
; ; fire only on 5 matches within 10 minutes
; threshold = 5 in 10m
; ; at most one notice per key within realert; the next one says how many were held back
; key = system_id
; realert = 10m
; actions = ops-mail, table
;
; [heartbeat:everyone]
; ; * is every system seen; listed systems are watched from neelix's start
; systems = *
; silence = 2h
; grace = 5m
; ; repeat while down (0 = never)
; remind = 12h
; actions = ops-mail
;
; [maintenance:sunday-patching]
; systems = ch2eu
; days = sun
; daily = 02:00-04:00
; timezone = Europe/Zurich
"""
