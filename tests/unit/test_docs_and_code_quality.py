"""The README documents every setting as the loader knows it, and the code stays ruff-clean."""

import subprocess
import sys
from pathlib import Path

from appliance.ops.instance import settings_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_the_loaders_table():
    readme = (ROOT / "README.md").read_text()
    assert settings_markdown() in readme, "regenerate with instance.settings_markdown()"


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
