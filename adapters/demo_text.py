"""DemoTextGenerator: an offline text model for running InsPilot without keys.

Deterministic per prompt (the same request always gets the same answer), it answers
each step in kind with exactly the number of items the step expects, drawn from small
Chinese vocabularies, and picks among the offered names when the step is a choice.
It is documented in the README as the default text backend, not a test double.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

from application.ports import TextAnswer, TextGenerator, TextRequest

_PRODUCTS = [
    "折叠雨伞",
    "智能水杯",
    "香薰台灯",
    "便携风扇",
    "睡眠眼罩",
    "宠物喂食器",
    "桌面花园",
    "语音便签",
    "助行拐杖",
    "保温饭盒",
    "手势台灯",
    "静音闹钟",
    "共享书柜",
    "净水吸管",
    "情绪手环",
    "厨房秤",
    "防丢钥匙扣",
    "坐姿提醒垫",
    "太阳能背包",
    "声控窗帘",
    "智能药盒",
    "儿童画板",
    "除湿鞋柜",
    "冥想音箱",
]
_PLACES = [
    "地铁车厢",
    "老旧厨房",
    "山间露营地",
    "医院候诊区",
    "大学图书馆",
    "阳台角落",
    "咖啡馆窗边",
    "公园长椅",
    "办公室工位",
    "儿童卧室",
    "海边栈道",
    "社区菜市场",
    "高铁座位",
    "健身房",
    "机场候机厅",
    "雨天公交站",
    "书房书桌",
    "浴室洗手台",
    "屋顶花园",
    "夜市摊位",
]
_SCENE_TAGS = [
    "warm morning light",
    "soft window light",
    "golden hour",
    "overcast daylight",
    "neon night glow",
    "wide angle",
    "eye level view",
    "low angle shot",
    "top-down view",
    "shallow depth of field",
    "wooden textures",
    "concrete walls",
    "potted plants",
    "rain on glass",
    "tiled floor",
    "minimal interior",
    "cluttered shelves",
    "distant mountains",
    "city skyline",
    "soft shadows",
]
_PRODUCT_TAGS = [
    "matte white plastic",
    "brushed aluminium",
    "rounded edges",
    "modular structure",
    "soft silicone",
    "walnut wood accents",
    "translucent shell",
    "compact cylinder",
    "folding hinge",
    "LED ring",
    "studio softbox lighting",
    "three-quarter view",
    "seamless surface",
    "textile cover",
    "ceramic base",
]
_CONCEPTS = [
    "让流动的热量停留片刻",
    "把分散的声音聚成一束",
    "随呼吸节奏慢慢变化",
    "用重量记住每一次使用",
    "在光与影之间切换状态",
    "让空气替你完成提醒",
    "把等待变成积累",
    "以折叠换取空间",
    "感知温差后自己调整",
    "把习惯翻译成信号",
    "让水分在循环里再生",
    "用振动代替言语",
]
_FUNCTION_POINTS = [
    "自动感应开合",
    "语音提醒",
    "温度实时显示",
    "一键折叠收纳",
    "手机远程控制",
    "低电量预警",
    "夜间柔光照明",
    "数据记录与回看",
    "多人共享模式",
    "防水防尘",
    "磁吸快速拆装",
    "定时自动清洁",
]
_NAME_PARTS = ["智能", "便携", "折叠", "感应", "共享", "静音", "模块化", "情绪"]
_NAME_OBJECTS = ["收纳盒", "照明灯", "提醒器", "饮水杯", "助眠仪", "通勤包", "清洁器", "种植架"]


def _rng(request: TextRequest) -> random.Random:
    digest = hashlib.sha256(f"{request.step}\n{request.prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _pick(rng: random.Random, pool: list[str], count: int) -> list[str]:
    """Distinct while the pool lasts, then numbered variants, so counts are always met."""
    picked = rng.sample(pool, min(count, len(pool)))
    while len(picked) < count:
        picked.append(f"{rng.choice(pool)}{len(picked) + 1}")
    return picked


def _tags(rng: random.Random, subject: str, pool: list[str]) -> str:
    return ", ".join([subject, *rng.sample(pool, 4)])


def _function(rng: random.Random) -> str:
    first, second, third = rng.sample(_FUNCTION_POINTS, 3)
    return f"集成{first}、{second}与{third}，先感知使用场景再自动切换模式，日常使用更省心"


def _name(rng: random.Random, index: int) -> str:
    return f"{rng.choice(_NAME_PARTS)}{_NAME_OBJECTS[(index + rng.randrange(8)) % 8]}"


class DemoTextGenerator(TextGenerator):
    def __init__(self, latency_s: float = 0.0) -> None:
        self._latency_s = latency_s

    async def complete(self, request: TextRequest) -> TextAnswer:
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        return TextAnswer(text="#".join(self._items(request)), model=request.model or "demo")

    def _items(self, request: TextRequest) -> list[str]:
        rng = _rng(request)
        count = request.expected_count
        kind = request.step.rsplit("/", 1)[-1]
        if request.options:
            return rng.sample(list(request.options), min(count, len(request.options)))
        if kind == "products":
            return _pick(rng, _PRODUCTS, count)
        if kind == "places":
            return _pick(rng, _PLACES, count)
        if kind == "scene_prompts":
            return [_tags(rng, place, _SCENE_TAGS) for place in _pick(rng, _SCENE_SUBJECTS, count)]
        if kind == "product_prompts":
            return [_tags(rng, "a consumer product", _PRODUCT_TAGS) for _ in range(count)]
        if kind == "concepts":
            return _pick(rng, _CONCEPTS, count)
        if kind == "functions":
            return [_function(rng) for _ in range(count)]
        return [_name(rng, index) for index in range(count)]


_SCENE_SUBJECTS = [
    "subway carriage interior",
    "old kitchen counter",
    "mountain campsite",
    "hospital waiting room",
    "university library",
    "balcony corner",
    "cafe window seat",
    "park bench",
    "office desk",
    "kids bedroom",
    "seaside boardwalk",
    "street market stall",
    "train seat",
    "airport lounge",
]
