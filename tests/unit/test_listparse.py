"""The `#`-list parser and count reconciliation, on what models really send back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.listparse import ListMismatch, clean_item, parse_list, split_items


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("折叠雨伞#智能水杯#香薰台灯", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("折叠雨伞＃智能水杯＃香薰台灯", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("1. 折叠雨伞#2. 智能水杯#3. 香薰台灯", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("1、折叠雨伞\n2、智能水杯\n3、香薰台灯", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("（1）折叠雨伞#(2)智能水杯#③香薰台灯", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("折叠雨伞#\n智能水杯#\n香薰台灯#", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("#折叠雨伞##智能水杯# #香薰台灯", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("“折叠雨伞”#「智能水杯」#'香薰台灯'", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("以下是三个产品：\n折叠雨伞#智能水杯#香薰台灯", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        ("- 折叠雨伞\n- 智能水杯\n* 香薰台灯。", ["折叠雨伞", "智能水杯", "香薰台灯"]),
        (
            "(subway carriage:1.2), warm light#office desk, top-down view",
            ["(subway carriage:1.2), warm light", "office desk, top-down view"],
        ),
    ],
)
def test_split_items_absorbs_model_looseness(answer: str, expected: list[str]) -> None:
    assert split_items(answer) == expected


def test_numbers_inside_an_item_are_kept() -> None:
    assert clean_item("3D打印灯罩") == "3D打印灯罩"
    assert clean_item("2. 24小时药盒") == "24小时药盒"


def test_one_item_too_many_is_cut_from_the_end() -> None:
    assert parse_list("甲#乙#丙#丁", 3) == ["甲", "乙", "丙"]


def test_too_few_items_is_a_mismatch_not_an_invention() -> None:
    result = parse_list("甲#乙", 3)
    assert result == ListMismatch(expected=3, received=2)
    assert isinstance(result, ListMismatch)
    assert "expected 3" in result.describe()


def test_empty_answer_is_a_mismatch() -> None:
    assert parse_list("   \n ", 1) == ListMismatch(expected=1, received=0)


def test_exact_count_passes_unchanged() -> None:
    assert parse_list("甲#乙#丙", 3) == ["甲", "乙", "丙"]


_ITEM = (
    st.text(
        alphabet=st.sampled_from("折叠雨伞智能水杯香薰台灯地铁车厢abcXYZ ,-"),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(lambda item: item and not item.startswith(("-", ",")))
)


@given(st.lists(_ITEM, min_size=1, max_size=12), st.sampled_from(["#", "＃", "#\n", " # "]))
def test_any_list_survives_the_separators_models_use(items: list[str], separator: str) -> None:
    expected = [item.rstrip(",").strip() for item in items]
    assert parse_list(separator.join(items), len(items)) == expected


@given(st.lists(_ITEM, min_size=1, max_size=12))
def test_numbered_lines_parse_like_a_hash_list(items: list[str]) -> None:
    numbered = "\n".join(f"{index}. {item}" for index, item in enumerate(items, start=1))
    assert parse_list(numbered, len(items)) == parse_list("#".join(items), len(items))


@given(st.lists(_ITEM, min_size=2, max_size=12))
def test_reconciliation_never_invents_items(items: list[str]) -> None:
    assert isinstance(parse_list("#".join(items[:-1]), len(items)), ListMismatch)
    assert parse_list("#".join(items), len(items) - 1) == parse_list(
        "#".join(items[:-1]), len(items) - 1
    )
