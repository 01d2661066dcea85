"""The configuration file: its shape, its defaults, and one clear line when it is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from m3saas.conf import ConfigError, load_config
from m3saas.passwords import password_key_derive

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "secrets" / "config.json.secret.example"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def example() -> dict:
    return json.loads(EXAMPLE.read_text())


def test_example_file_loads_as_mysql_with_mqtt():
    config = load_config(EXAMPLE)
    assert config.is_mysql
    assert config.database.host == "db"
    assert config.database.port == 3306
    assert config.collation == "utf8mb4_unicode_ci"
    assert config.charset == "utf8mb4"
    assert config.backup.per_day == 1 and config.backup.max == 10
    assert config.mqtt is not None and config.mqtt.port == 1883  # given as the string "1883"


def test_no_file_gives_the_embedded_sqlite_default(monkeypatch, tmp_path):
    monkeypatch.delenv("CONFIG_FILE", raising=False)
    monkeypatch.setattr("m3saas.conf.BASE_DIR", tmp_path)
    config = load_config()
    assert config.embedded
    assert not config.is_mysql
    assert config.mqtt is None


def test_config_file_env_wins_over_root_config_json(monkeypatch, tmp_path):
    path = write(tmp_path, example())
    monkeypatch.setenv("CONFIG_FILE", str(path))
    assert load_config().source == str(path)


def test_sub_directory_is_normalised(tmp_path):
    data = example()
    data["sub_directory"] = "/api/saas/"
    assert load_config(write(tmp_path, data)).sub_directory == "api/saas"


def test_mqtt_section_with_empty_host_means_off(tmp_path):
    data = example()
    data["mqtt"] = {"host": "", "port": "", "username": "", "password": ""}
    assert load_config(write(tmp_path, data)).mqtt is None


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d["tenants"]["database"].pop("host"), "tenants.database.host"),
        (lambda d: d.pop("tenants"), "tenants"),
        (lambda d: d["tenants"]["database"].__setitem__("port", "abc"), "tenants.database.port"),
        (lambda d: d["tenants"]["database"].__setitem__("port", True), "tenants.database.port"),
        (lambda d: d["tenants"]["backup"].__setitem__("perDay", "1.5"), "tenants.backup.perDay"),
        (lambda d: d["tenants"].__setitem__("database", []), "tenants.database"),
        (lambda d: d["tenants"]["database"].__setitem__("user", 7), "tenants.database.user"),
        (lambda d: d["tenants"]["settings"].__setitem__("collation", "x; DROP"), "tenants.settings.collation"),
        (lambda d: d["mqtt"].__setitem__("port", "99999"), "mqtt.port"),
        (lambda d: d.__setitem__("tenantPasswordKeys", ["not-a-key"]), "tenantPasswordKeys[0]"),
        (lambda d: d["tenantPasswordKeys"].append("x" * 44), "tenantPasswordKeys[1]"),
        (lambda d: d.__setitem__("tenantPasswordKeys", []), "tenantPasswordKeys"),
        (lambda d: d.__setitem__("tenantPasswordKeys", {"k": 1}), "tenantPasswordKeys"),
    ],
)
def test_bad_key_is_named_with_the_file(tmp_path, mutate, key):
    data = example()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: key '{key}'")
    assert "\n" not in message


def test_malformed_json_names_the_file_and_position(tmp_path):
    path = write(tmp_path, '{"dbSalt": "x",,}')
    with pytest.raises(ConfigError, match=r"not valid JSON \(line 1, column 16"):
        load_config(path)


def manage_check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONFIG_FILE": str(path), "SECRET_KEY": "x"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_manage_py_stops_with_one_line(tmp_path):
    data = example()
    del data["tenants"]["database"]["database"]
    path = write(tmp_path, data)
    result = manage_check(path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"M3SaaS cannot start: {path}: key 'tenants.database.database' is missing"


def test_password_keys_are_read_in_order_and_one_may_be_a_plain_string(tmp_path):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    data = example()
    derived = password_key_derive(data["dbSalt"])
    data["tenantPasswordKeys"] = [first, second]
    assert load_config(write(tmp_path, data)).password_keys == (first, second, derived)
    data["tenantPasswordKeys"] = first
    assert load_config(write(tmp_path, data)).password_keys == (first, derived)


def test_without_password_keys_a_key_derived_from_the_salt_encrypts(tmp_path):
    """The master alone still gives nothing: the key needs the config file's salt."""
    data = example()
    del data["tenantPasswordKeys"]
    assert load_config(write(tmp_path, data)).password_keys == (password_key_derive(data["dbSalt"]),)
    data["dbSalt"] = ""
    assert load_config(write(tmp_path, data)).password_keys == ()


def test_manage_py_stops_with_one_line_on_a_malformed_password_key(tmp_path):
    data = example()
    data["tenantPasswordKeys"] = ["too-short"]
    path = write(tmp_path, data)
    result = manage_check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"M3SaaS cannot start: {path}: key 'tenantPasswordKeys[0]' is not a Fernet key")
