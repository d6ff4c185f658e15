"""INSPILOT_TEXT_ENDPOINTS: entries checked at start-up, named when wrong, keys never shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from entrypoints.settings import Settings, SettingsError

SECRET = "sk-very-secret-0123456789"
EU = {
    "name": "eu",
    "kind": "azure",
    "endpoint": "https://eu.openai.azure.com",
    "api_key_env": "EU_KEY",
    "deployment": "gpt-4o",
    "vision_deployment": "gpt-4o",
}
LOCAL = {"name": "local", "kind": "openai", "base_url": "http://gpu:8000/v1", "model": "qwen"}


def _load(*entries: Any, **environ: str) -> Settings:
    return Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "endpoints",
            "INSPILOT_TEXT_ENDPOINTS": json.dumps(list(entries)),
            "EU_KEY": SECRET,
            **environ,
        }
    )


def test_entries_load_with_defaults_and_keys_from_the_environment() -> None:
    eu, local = _load(EU, {**LOCAL, "weight": 2, "max_concurrency": 4}).text_endpoints
    assert (eu.name, eu.kind, eu.url, eu.model, eu.vision_model) == (
        "eu",
        "azure",
        "https://eu.openai.azure.com",
        "gpt-4o",
        "gpt-4o",
    )
    assert eu.api_key == SECRET and (eu.weight, eu.max_concurrency) == (1.0, None)
    assert (local.vision_model, local.api_key, local.weight, local.max_concurrency) == (
        None,
        None,
        2.0,
        4,
    )


def test_keys_stay_out_of_reprs() -> None:
    settings = _load(EU, {**LOCAL, "api_key": SECRET})
    environ = {
        "INSPILOT_TEXT_BACKEND": "openai",
        "INSPILOT_OPENAI_MODEL": "m",
        "INSPILOT_OPENAI_API_KEY": SECRET,
    }
    assert SECRET not in repr(settings) and SECRET not in repr(Settings.load(environ))
    assert SECRET not in repr(settings.text_endpoints)


WRONG = [
    ({**EU, "kind": "azur"}, "entry 'eu': key 'kind' must be \"azure\" or \"openai\""),
    ({**EU, "deployment": None}, "entry 'eu': key 'deployment' is required"),
    ({**EU, "model": "x"}, "entry 'eu': key 'model' is not a key of a azure entry (a azure entry"),
    ({**EU, "endpoint": "eu.openai.azure.com"}, "entry 'eu': key 'endpoint' must start with"),
    ({**EU, "weight": 0}, "entry 'eu': key 'weight' must be a number above 0"),
    ({**EU, "max_concurrency": 2.5}, "entry 'eu': key 'max_concurrency' must be a whole number"),
    ({**EU, "api_key": SECRET}, "entry 'eu': key 'api_key_env' conflicts with 'api_key'"),
    ({**EU, "api_key_env": None}, "entry 'eu': key 'api_key_env' is required"),
    ({**LOCAL, "api_key": 12345}, "entry 'local': key 'api_key' must be a non-empty text"),
    ({**EU, "name": ""}, "entry 1: key 'name' must be a short text"),
    ({k: v for k, v in EU.items() if k != "name"}, "entry 1: key 'name' must be a short text"),
    ({**EU, "api_key_env": "NOWHERE"}, "entry 'eu': key 'api_key_env' names NOWHERE, which is"),
]


@pytest.mark.parametrize(("entry", "message"), WRONG)
def test_a_wrong_entry_names_the_entry_and_the_key_never_the_key_itself(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(entry, {**LOCAL, "vision_model": "qwen-vl", "api_key": SECRET})
    text = str(caught.value)
    assert text.startswith("INSPILOT_TEXT_ENDPOINTS: ") and message in text
    assert SECRET not in text


def test_the_second_entry_is_named_by_position_when_it_has_no_name() -> None:
    with pytest.raises(SettingsError, match="entry 2: key 'kind'"):
        _load(EU, {"kind": "gpt", "api_key": SECRET})


def test_a_name_used_twice_is_refused() -> None:
    with pytest.raises(
        SettingsError, match="entry 'eu': key 'name' is already the name of entry 1"
    ):
        _load(EU, {**EU, "api_key_env": "EU_KEY"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (f'[{{"name": "x", "api_key": "{SECRET}",}}]', "is not valid JSON"),
        ("{}", "must be a JSON array"),
        ("[]", "must be a JSON array"),
        (json.dumps([LOCAL]), "no entry has a vision_deployment or vision_model"),
    ],
)
def test_a_wrong_list_is_refused_without_quoting_it(raw: str, message: str) -> None:
    environ = {"INSPILOT_TEXT_BACKEND": "endpoints", "INSPILOT_TEXT_ENDPOINTS": raw}
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.load(environ)
    assert SECRET not in str(caught.value)


def test_the_endpoints_backend_needs_entries() -> None:
    with pytest.raises(SettingsError, match="INSPILOT_TEXT_ENDPOINTS must be set"):
        Settings.load({"INSPILOT_TEXT_BACKEND": "endpoints"})


def test_array_of_tables_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "inspilot.toml"
    path.write_text(
        'text_backend = "endpoints"\n'
        "max_num = 8\n"
        "[[text_endpoints]]\n"
        'name = "eu"\nkind = "azure"\nendpoint = "https://eu.openai.azure.com"\n'
        'api_key_env = "EU_KEY"\ndeployment = "gpt-4o"\nvision_deployment = "gpt-4o"\n'
        "weight = 2\n"
        "[[text_endpoints]]\n"
        'name = "us"\nkind = "openai"\nbase_url = "http://us:8000/v1"\nmodel = "m"\n',
        encoding="utf-8",
    )
    settings = Settings.load({"INSPILOT_CONFIG_FILE": str(path), "EU_KEY": SECRET})
    assert [(e.name, e.weight) for e in settings.text_endpoints] == [("eu", 2.0), ("us", 1.0)]
    assert settings.text_endpoints[0].api_key == SECRET and settings.max_num == 8


def test_other_backends_ignore_the_list() -> None:
    settings = Settings.load({"INSPILOT_TEXT_ENDPOINTS": json.dumps([EU])})
    assert settings.text_backend == "demo" and settings.text_endpoints[0].api_key is None


def test_the_one_endpoint_syntaxes_are_a_one_entry_list() -> None:
    from entrypoints.adapter_builders import text_endpoint_entries

    azure = Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "azure",
            "INSPILOT_AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
            "INSPILOT_AZURE_OPENAI_API_KEY": "k",
            "INSPILOT_AZURE_OPENAI_DEPLOYMENT": "gpt-4o",
        }
    )
    (entry,) = text_endpoint_entries(azure)
    assert (entry.name, entry.kind, entry.model, entry.vision_model) == (
        "azure",
        "azure",
        "gpt-4o",
        "gpt-4o",
    )
    assert entry.api_key == "k" and entry.api_version == "2024-10-21"
    openai = Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "openai",
            "INSPILOT_OPENAI_MODEL": "m",
            "INSPILOT_OPENAI_VISION_MODEL": "v",
        }
    )
    (entry,) = text_endpoint_entries(openai)
    assert (entry.name, entry.kind, entry.url, entry.model, entry.vision_model) == (
        "openai",
        "openai",
        "",
        "m",
        "v",
    )
