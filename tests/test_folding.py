"""Text folded for mention matching (flows/folding.py): every path folds alike."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import folding

# ASCII, weighted toward what folding treats specially: gaps, hyphens, case, separators
_ASCII = st.text(
    st.one_of(
        st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f-aZ\x00")),
        st.characters(max_codepoint=127),
    ),
    max_size=200,
)


@settings(max_examples=400, deadline=None)
@given(text=_ASCII)
def test_ascii_text_folds_as_any_text_does(text: str) -> None:
    if not folding._folds_one_to_one(text):
        return  # "\x01": the general path folds it
    folded, starts = folding._fold_fast(text)
    translated, translated_starts = folding._fold_translated(text)
    assert folded == translated == folding._fold_general(text)[0]
    assert starts.tolist() == translated_starts.tolist()


def test_a_control_character_in_the_text_is_not_taken_for_a_dropped_hyphen() -> None:
    assert folding.fold_sections(["IN\x01S", "a-b"]).folded == "in\x01s\x00ab"


def test_ascii_folding_keeps_a_character_per_origin() -> None:
    folded, starts = folding._fold_fast("Non-alcoholic  Fatty\n\tLIVER -- disease")
    assert folded == "nonalcoholic fatty liver disease"
    assert isinstance(starts, np.ndarray) and len(starts) == len(folded)
    assert folded[starts.tolist().index(15)] == "f"  # "Fatty" after the run of spaces
