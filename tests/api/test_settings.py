"""One typed settings object: environment and `.env` (TRACKIT_ prefix), secrets generated
once in development, refused when missing or default in production."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from api.settings import DEV_SECRETS_FILE, ConfigError, Settings
from tests.fixtures.processes import TRACKIT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TRACKIT_ variable from outside, and a scratch working directory."""
    for name in list(os.environ):
        if name.startswith("TRACKIT_") or name in ("SENTRY_DSN", "STRIPE_API_KEY"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_are_the_zero_config_embedded_mode(clean_env: Path) -> None:
    settings = Settings()
    assert settings.database_url == "sqlite://trackit.db"
    assert not settings.distributed
    assert (settings.webhook_tolerance_s, settings.webhook_max_bytes) == (300, 1024 * 1024)
    assert settings.match_window_s == 3 * 24 * 3600 and settings.max_attempts == 10


def test_environment_with_prefix_configures_and_redis_url_selects_distributed(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKIT_DATABASE_URL", "postgres://u@db/trackit")
    monkeypatch.setenv("TRACKIT_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("TRACKIT_WEBHOOK_TOLERANCE_S", "60")
    settings = Settings()
    assert settings.database_url == "postgres://u@db/trackit"
    assert settings.distributed and settings.webhook_tolerance_s == 60


def test_webhook_secrets_are_comma_separated_for_rotation(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKIT_STRIPE_WEBHOOK_SECRETS", "whsec_old, whsec_new,,")
    assert Settings().stripe_webhook_secrets == ["whsec_old", "whsec_new"]


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        "TRACKIT_DATABASE_URL=sqlite://from-dotenv.db\nTRACKIT_STRIPE_WEBHOOK_SECRETS=whsec_a,whsec_b\n"
        "TRACKIT_WEBHOOK_MAX_BYTES=2048\n"
    )
    monkeypatch.setenv("TRACKIT_WEBHOOK_MAX_BYTES", "4096")
    settings = Settings()
    assert settings.database_url == "sqlite://from-dotenv.db"
    assert settings.stripe_webhook_secrets == ["whsec_a", "whsec_b"]
    assert settings.webhook_max_bytes == 4096


def test_development_generates_missing_secrets_once_and_reuses_them(clean_env: Path) -> None:
    first = Settings().with_dev_secrets()
    secrets_file = clean_env / DEV_SECRETS_FILE
    assert secrets_file.exists()
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert first.jwt_secret and first.stripe_webhook_secrets[0].startswith("whsec_")
    again = Settings().with_dev_secrets()
    assert (again.jwt_secret, again.stripe_webhook_secrets) == (first.jwt_secret, first.stripe_webhook_secrets)


def test_given_secrets_are_kept_in_development(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKIT_STRIPE_WEBHOOK_SECRETS", "whsec_mine")
    settings = Settings().with_dev_secrets()
    assert settings.stripe_webhook_secrets == ["whsec_mine"]
    assert settings.jwt_secret  # generated: it was missing


def test_dev_secrets_file_and_dotenv_are_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert DEV_SECRETS_FILE in ignored and ".env" in ignored


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, ["TRACKIT_JWT_SECRET is not set", "TRACKIT_STRIPE_WEBHOOK_SECRETS is not set"]),
        ({"TRACKIT_STRIPE_WEBHOOK_SECRETS": "whsec_real_one"}, ["TRACKIT_JWT_SECRET is not set"]),
        (
            {"TRACKIT_JWT_SECRET": "change-me", "TRACKIT_STRIPE_WEBHOOK_SECRETS": "whsec_real_one"},
            ["TRACKIT_JWT_SECRET is a default value"],
        ),
        (
            {"TRACKIT_JWT_SECRET": "a-real-secret-0123456789", "TRACKIT_STRIPE_WEBHOOK_SECRETS": "whsec_real,whsec_test"},
            ["TRACKIT_STRIPE_WEBHOOK_SECRETS holds a default value"],
        ),
    ],
    ids=["both-missing", "jwt-missing", "jwt-default", "webhook-default"],
)
def test_production_refuses_a_missing_or_default_secret_and_says_which(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: list[str]
) -> None:
    monkeypatch.setenv("TRACKIT_ENV", "production")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        Settings().with_dev_secrets()
    message = str(refused.value)
    for expected in named:
        assert expected in message
    assert ("JWT" in message) == any("JWT" in n for n in named)
    assert not (clean_env / DEV_SECRETS_FILE).exists(), "production never generates secrets"


def test_production_serve_exits_with_the_reason_before_listening(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKIT_")}
    env.update(TRACKIT_ENV="production", TRACKIT_STRIPE_WEBHOOK_SECRETS="whsec_real_one")
    done = subprocess.run([TRACKIT, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "TRACKIT_JWT_SECRET is not set" in done.stderr
    assert "Traceback" not in done.stderr
