"""A keyword list's label set: classes, folders, each refusal of a list that cannot work."""

from __future__ import annotations

import pytest

from components.config import params_from_dict
from components.data.labels import (
    CLASSES,
    KEYWORDS,
    SILENCE,
    UNKNOWN,
    check_keywords,
    class_index,
    classes_of,
    folder_name,
    label_of_word,
)
from components.errors import ConfigError


def test_the_default_is_the_speech_commands_12_classes():
    assert classes_of(KEYWORDS) == CLASSES == (
        "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", UNKNOWN, SILENCE,
    )  # fmt: skip
    assert params_from_dict({}).prepare.keywords == KEYWORDS
    assert class_index(UNKNOWN) == 10 and class_index(SILENCE) == 11


def test_phrases_keep_their_words_and_get_a_folder_with_underscores():
    keywords = check_keywords(["hey  edge", " Lights On ", "don't", "x-ray", "7"])
    assert keywords == ("hey edge", "Lights On", "don't", "x-ray", "7")
    assert [folder_name(k) for k in keywords] == ["hey_edge", "lights_on", "don't", "x-ray", "7"]
    assert classes_of(keywords) == (*keywords, UNKNOWN, SILENCE)
    assert class_index("Lights On", classes_of(keywords)) == 1
    assert label_of_word("hey_edge", keywords) == "hey edge"
    assert label_of_word("lights_on", keywords) == "Lights On"
    assert label_of_word("hey", keywords) == UNKNOWN
    assert label_of_word("yes") == "yes" and label_of_word("bed") == UNKNOWN


REFUSALS = [
    ([], "the keyword list is empty: name at least one word or short phrase"),
    (["yes", "no", "Yes"],
     "'Yes' repeats the keyword 'yes' (keywords are compared ignoring case and spaces)"),
    (["hey edge", "heyedge"],
     "'heyedge' repeats the keyword 'hey edge' (keywords are compared ignoring case and spaces)"),
    (["yes", "_unknown_"], "'_unknown_' is a class or folder name of its own (_unknown_, "
     "_silence_, _background_noise_, phrases): choose another keyword"),
    (["Phrases"], "'Phrases' is a class or folder name of its own"),
    (["_silence_"], "'_silence_' is a class or folder name of its own"),
    (["_background_noise_"], "'_background_noise_' is a class or folder name of its own"),
    (["hey!"], "'hey!' has the character '!', which cannot be spoken or be part of a folder "
     "name: use letters and digits (apostrophes and hyphens inside a word), words separated by "
     "spaces"),
    (["lights/on"], "'lights/on' has the character '/'"),
    (["hey_edge"], "'hey_edge' has the character '_'"),
    (["-v"], "'-v' has the character '-' at the start of a word, which cannot be spoken"),
    (["yes", "hey 'edge"], "\"hey 'edge\" has the character \"'\" at the start of a word"),
    (["  "], "'  ' is blank: a keyword needs at least one word"),
    (["a" * 65], f"'{'a' * 65}' is longer than 64 characters"),
]  # fmt: skip


def check_message(keywords: list[str]) -> str:
    try:
        check_keywords(keywords)
    except ValueError as err:
        return str(err)
    raise AssertionError(f"{keywords} was accepted")


@pytest.mark.parametrize(("keywords", "message"), REFUSALS)
def test_a_list_that_cannot_work_is_one_config_error_naming_the_word(keywords, message):
    assert check_message(keywords).startswith(message)
    with pytest.raises(ConfigError) as err:
        params_from_dict({"prepare": {"keywords": keywords}}, "params.yaml")
    assert str(err.value).splitlines() == [
        "params.yaml: invalid parameters",
        f"  prepare.keywords: {check_message(keywords)}",
    ]


def test_yaml_booleans_and_a_bare_string_are_refused_with_what_to_write():
    with pytest.raises(ConfigError, match=r"True in the list is a YAML boolean: unquoted yes, no, "
                       r"on and off are read as true/false, so quote the words"):  # fmt: skip
        params_from_dict({"prepare": {"keywords": [True, False, "up"]}})
    with pytest.raises(ConfigError, match=r"expected a list of keywords, got the string 'hey "
                       r"edge': write \['hey edge'\]"):  # fmt: skip
        params_from_dict({"prepare": {"keywords": "hey edge"}})
    with pytest.raises(ConfigError, match=r"prepare\.keywords\.1: Input should be a valid string"):
        params_from_dict({"prepare": {"keywords": ["yes", 7]}})


def test_params_normalize_the_spaces_of_a_phrase():
    params = params_from_dict({"prepare": {"keywords": ["hey   edge", "lights on"]}})
    assert params.prepare.keywords == ("hey edge", "lights on")
