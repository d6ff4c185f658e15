"""Settings decode once and name the wrong variable; the demo adapters answer in kind."""

from __future__ import annotations

import struct
import zlib

import pytest

from adapters.demo_images import DemoImageGenerator
from adapters.demo_text import DemoTextGenerator
from application.ports import ImageRequest, TextRequest
from domain.listparse import split_items
from entrypoints.settings import Settings, SettingsError


def test_defaults_run_offline_on_the_embedded_database() -> None:
    settings = Settings.load({})
    assert (settings.text_backend, settings.images_backend, settings.storage_backend) == (
        "demo",
        "demo",
        "embedded",
    )
    assert settings.cors_origins == ("http://localhost:3000", "http://127.0.0.1:3000")
    assert (settings.max_body_mb, settings.max_num, settings.max_image_mb) == (64, 12, 8)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"INSPILOT_MAX_NUM": "many"}, "INSPILOT_MAX_NUM='many': must be a whole number"),
        ({"INSPILOT_MAX_BODY_MB": "0"}, "INSPILOT_MAX_BODY_MB='0': must be a whole number"),
        ({"INSPILOT_TEXT_BACKEND": "gpt"}, "INSPILOT_TEXT_BACKEND='gpt': must be one of"),
        ({"INSPILOT_PORT": "70000"}, "INSPILOT_PORT='70000': must be a TCP port"),
        ({"INSPILOT_IMAGES_BACKEND": "sd"}, "INSPILOT_SD_INSTANCES must be set"),
        ({"INSPILOT_TEXT_BACKEND": "azure"}, "INSPILOT_AZURE_OPENAI_ENDPOINT must be set"),
        ({"INSPILOT_STORAGE_BACKEND": "mongodb"}, "INSPILOT_MONGODB_URI must be set"),
        ({"INSPILOT_SD_LEDGER": "redis"}, "INSPILOT_SD_LEDGER='redis': must be one of"),
        ({"INSPILOT_SD_LEASE_S": "0"}, "INSPILOT_SD_LEASE_S='0': must be a number above 0"),
        (
            {"INSPILOT_SD_LEDGER": "mongodb", "INSPILOT_STORAGE_BACKEND": "memory"},
            "INSPILOT_SD_LEDGER=mongodb needs INSPILOT_STORAGE_BACKEND embedded or mongodb",
        ),
    ],
)
def test_a_wrong_value_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.load(environ)


def test_config_file_is_read_and_the_environment_wins(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "inspilot.toml"
    path.write_text('max_num = 8\nsd_instances = ["http://a:7860", "http://b:7860"]\n')
    settings = Settings.load({"INSPILOT_CONFIG_FILE": str(path), "INSPILOT_MAX_NUM": "9"})
    assert settings.max_num == 9
    assert settings.sd_instances == ("http://a:7860", "http://b:7860")


@pytest.mark.parametrize("count", [1, 3, 6, 12, 40])
@pytest.mark.parametrize(
    "step", ["products", "places", "scene_prompts", "concepts", "functions", "identify"]
)
async def test_demo_text_gives_exactly_the_count_asked(step: str, count: int) -> None:
    request = TextRequest(step=f"paint/x/{step}", prompt="任务", expected_count=count)
    answer = await DemoTextGenerator().complete(request)
    assert len(split_items(answer.text)) == count
    assert answer.text == (await DemoTextGenerator().complete(request)).text


async def test_demo_text_chooses_among_the_options() -> None:
    request = TextRequest("paint/x/choose", "选", 2, options=("甲方案", "乙方案", "丙方案"))
    chosen = split_items((await DemoTextGenerator().complete(request)).text)
    assert len(chosen) == 2 and set(chosen) <= {"甲方案", "乙方案", "丙方案"}


async def test_demo_image_is_a_valid_png_of_the_requested_size() -> None:
    image = await DemoImageGenerator().generate(ImageRequest(prompt="kitchen"))
    data = image.data
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1024, 576)
    idat_length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_length])
    assert len(raw) == height * (1 + width * 3)
    again = await DemoImageGenerator().generate(ImageRequest(prompt="kitchen"))
    other = await DemoImageGenerator().generate(ImageRequest(prompt="garden"))
    assert again.data == data and other.data != data
