"""Settings: what people paste as DATABASE_URL works, and production refuses unsafe settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from todo_api.adapters.sql.engine import database_target
from todo_api.config import Settings

NEON = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/dbname"
    "?sslmode=require&channel_binding=require"
)
STRONG = "s" * 40


def test_a_neon_url_becomes_asyncpg_with_ssl_required_and_pooler_mode() -> None:
    target = database_target(NEON)
    assert target.url.drivername == "postgresql+asyncpg"
    assert target.url.host == "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
    assert target.url.database == "dbname"
    assert target.url.password == "AbC123dEf"
    assert dict(target.url.query) == {}
    assert target.connect_args == {"ssl": "require"}
    assert target.pooler is True


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"])
def test_every_postgres_scheme_is_normalised_to_asyncpg(scheme: str) -> None:
    target = database_target(f"{scheme}://u:p@localhost:5433/todo")
    assert target.url.render_as_string(hide_password=False) == "postgresql+asyncpg://u:p@localhost:5433/todo"
    assert target.connect_args == {}
    assert target.pooler is False


def test_a_direct_neon_host_is_not_pooled_unless_told() -> None:
    direct = NEON.replace("-pooler", "")
    assert database_target(direct).pooler is False
    assert database_target(direct, pooler_mode=True).pooler is True
    assert database_target(NEON, pooler_mode=False).pooler is False


def test_sslmode_disable_passes_no_ssl_argument() -> None:
    assert database_target("postgres://u@h/db?sslmode=disable").connect_args == {}


def test_a_non_postgres_url_is_refused() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        database_target("sqlite:///todo.db")


def test_cors_origins_accept_a_comma_separated_list() -> None:
    settings = Settings.model_validate({"cors_origins": "https://a.example, https://b.example/"})
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_development_runs_without_a_secret_and_with_docs() -> None:
    settings = Settings(_env_file=None)
    assert len(settings.signing_key()) >= 32
    assert settings.show_docs is True
    assert settings.json_logs is False


def production(**values: object) -> Settings:
    base: dict[str, object] = {
        "environment": "production",
        "database_url": "postgresql://u:p@db/todo",
        "secret_key": STRONG,
        "password_pepper": "p" * 40,
        "cors_origins": ["https://app.example"],
    }
    base.update(values)
    return Settings.model_validate(base)


def test_production_with_safe_settings_starts_with_json_logs_and_no_docs() -> None:
    settings = production()
    assert settings.json_logs is True
    assert settings.show_docs is False


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"secret_key": None}, "SECRET_KEY"),
        ({"secret_key": "too-short"}, "SECRET_KEY"),
        ({"secret_key": "changeme"}, "SECRET_KEY"),
        ({"database_url": None}, "DATABASE_URL"),
        ({"password_pepper": None}, "PASSWORD_PEPPER"),
        ({"cors_origins": ["*"]}, "CORS_ORIGINS"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        production(**values)


def test_a_wildcard_origin_without_credentials_is_allowed_in_production() -> None:
    assert production(cors_origins=["*"], cors_allow_credentials=False).cors_origins == ["*"]


def test_the_external_issuer_settings_come_together() -> None:
    with pytest.raises(ValidationError, match="AUTH_JWKS_URL"):
        Settings.model_validate({"auth_jwks_url": "https://auth.example/api/auth/jwks"})


def test_a_wildcard_origin_with_credentials_is_refused_in_development_too() -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings.model_validate({"cors_origins": ["*"]})


def test_no_proxy_is_trusted_unless_configured() -> None:
    assert Settings(_env_file=None).trusted_proxies == ()


def test_trusted_proxies_accept_addresses_and_networks_of_both_families() -> None:
    settings = Settings.model_validate({"trusted_proxies": "10.0.0.0/8, 192.168.1.7 ,fd00::/8,10.1.2.3/16"})
    assert [str(network) for network in settings.trusted_proxies] == [
        "10.0.0.0/8",
        "192.168.1.7/32",
        "fd00::/8",
        "10.1.0.0/16",
    ]


def test_trusted_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1")
    assert [str(network) for network in Settings(_env_file=None).trusted_proxies] == ["127.0.0.1/32"]


@pytest.mark.parametrize("value", ["localhost", "*", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_not_an_address_or_network_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        Settings.model_validate({"trusted_proxies": value})
