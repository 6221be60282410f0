"""Settings come from the environment in one place and refuse unsafe combinations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coachup.settings import ENV_VARS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_use_the_embedded_broker_and_sqlite(tmp_path):
    from workers.brokers import broker_for

    s = load_settings({"COACHUP_DATA_DIR": str(tmp_path)})
    broker = broker_for(s)
    socket = (tmp_path / "broker" / "valkey.sock").resolve()
    assert broker.name == "embedded" and broker.url == f"redis+socket://{socket}"
    assert s.database_url.startswith("sqlite:///") and s.assess_provider == "heuristic"
    # a real Redis: it is its own result backend, as an external Redis is
    assert broker.result_backend == broker.url and broker.local_server() is not None


def test_redis_broker_doubles_as_result_backend():
    from workers.brokers import broker_for

    broker = broker_for(load_settings({"COACHUP_BROKER_URL": "redis://127.0.0.1:6379/0"}))
    assert broker.name == "redis" and broker.result_backend == "redis://127.0.0.1:6379/0"
    assert broker.local_server() is None


def test_provider_precedence():
    assert load_settings({"AI_PROVIDER": "openai", "AI_PROVIDER_ASSESS": "heuristic"}).assess_provider == "heuristic"
    assert load_settings({"AI_PROVIDER": "openai"}).assess_provider == "openai"
    assert load_settings({}).assess_provider == "heuristic"


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"COACHUP_ENV": "production"}, "COACHUP_HASH_SECRET"),
        ({"ASSESSMENTS_BACKOFF_MAX_MS": "4000000"}, "visibility timeout"),
        ({"INTERACTION_MAX_TURNS": "twelve"}, "INTERACTION_MAX_TURNS"),
        ({"AI_PROVIDER": "nonsense"}, "provider"),
        ({"LANGSMITH_TRACING": "true"}, "transcripts"),
    ],
)
def test_unsafe_or_malformed_settings_are_refused(env, needle):
    with pytest.raises(SettingsError, match=needle):
        load_settings(env)


@pytest.mark.parametrize("url", ["amqp://guest:s3cret-pw@127.0.0.1:5672//", "127.0.0.1:6379", "kafka://k:9092"])
def test_an_unsupported_broker_url_is_refused_by_the_settings_check_in_one_line(url):
    # Given a broker URL coachup has no broker for, when the settings are loaded (every process does so first),
    # then they are refused with one line naming the variable, and never echoing the URL (it may hold a password)
    with pytest.raises(SettingsError) as refused:
        load_settings({"COACHUP_BROKER_URL": url})
    message = str(refused.value)
    assert message.startswith("COACHUP_BROKER_URL ") and "\n" not in message
    assert "s3cret" not in message and "127.0.0.1" not in message


def test_the_settings_check_and_the_broker_chooser_know_the_same_schemes():
    from coachup.settings import BROKER_SCHEMES
    from workers.brokers import _KINDS

    assert set(_KINDS) == {"", *BROKER_SCHEMES}
    for scheme in BROKER_SCHEMES:
        load_settings({"COACHUP_BROKER_URL": f"{scheme}://somewhere/0"})  # every scheme the chooser takes passes


def test_secrets_are_not_in_repr():
    s = load_settings({"OPENAI_API_KEY": "sk-test-123456789", "PERSIST_ASSESSMENTS_SECRET": "psec-1"})
    assert "sk-test" not in repr(s) and "psec-1" not in repr(s)


def test_readme_env_table_lists_every_variable_the_code_reads():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, re.M))
    declared = {v.name for v in ENV_VARS}
    assert declared <= documented, declared - documented
    read_in_code = set()
    for path in (
        list((ROOT / "coachup").rglob("*.py"))
        + list((ROOT / "workers").rglob("*.py"))
        + list((ROOT / "web").rglob("*.py"))
        + [ROOT / "celeryconfig.py"]
    ):
        read_in_code |= set(re.findall(r"""env(?:\.get)?\(\s*["']([A-Z][A-Z0-9_]+)["']""", path.read_text()))
        read_in_code |= set(re.findall(r"""_(?:str|int|float)\(env, ["']([A-Z][A-Z0-9_]+)["']\)""", path.read_text()))
    assert read_in_code <= documented, read_in_code - documented


def test_readme_env_table_is_the_generated_one():
    # regenerate with: python -c "from coachup.settings import env_table; print(env_table())"
    from coachup.settings import env_table

    assert env_table() in (ROOT / "README.md").read_text()
