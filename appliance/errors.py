"""The few exception classes the appliance raises on purpose.

Each carries what its catcher needs: a config error names file, section and key; a frame error
says whether the connection can go on (resynchronise) or must be closed.
"""

from __future__ import annotations

# Exit code for "the configuration is wrong" (sysexits.h EX_CONFIG), so supervisord logs and
# operators can tell it from a crash.
EXIT_CONFIG = 78


class ApplianceError(Exception):
    """Base class for errors the appliance reports to a person."""


class ConfigError(ApplianceError):
    """A setting is unknown, missing or has a bad value."""

    def __init__(self, message: str, path: str = "", section: str = "", key: str = "") -> None:
        self.path, self.section, self.key, self.reason = path, section, key, message
        where = path or "<config>"
        if section:
            where += f", section [{section}]"
        if key:
            where += f", key {key!r}"
        super().__init__(f"{where}: {message}")


class FrameError(ApplianceError):
    """A wire frame was rejected. `kind` is a short stable label for counting; `fatal` means
    the stream cannot be resynchronised and the connection must close."""

    def __init__(self, reason: str, kind: str, fatal: bool = False) -> None:
        self.reason, self.kind, self.fatal = reason, kind, fatal
        super().__init__(reason)


class JournalError(ApplianceError):
    """The journal on disk is not usable (not a torn tail, which is repaired silently)."""
