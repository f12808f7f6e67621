"""Every exercise text is complete, and its Korean text says the same steps with the same commands."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = sorted(p for p in (ROOT / "exercises").iterdir() if p.is_dir())
# the sections every exercise has, in each language
REQUIRED = {"README.md": ("Step 1", "Step 2", "Step 3", "Food for thought", "Troubleshooting"),
            "README.ko.md": ("1단계", "2단계", "3단계", "생각해 볼 거리", "문제 해결")}


def sections(text):
    return [line[3:] for line in text.splitlines() if line.startswith("## ")]


def commands(text):
    """The halab commands of the text's code blocks, in order, with placeholders such as <the run> made equal."""
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if re.match(r"(sudo )?halab[ >]", line):
                out.append(re.sub(r"<[^>]*>", "<...>", " ".join(line.split())))
    return out


def test_there_are_exercises():
    assert len(EXERCISES) >= 8


@pytest.mark.parametrize("folder", EXERCISES, ids=lambda p: p.name)
def test_each_text_has_the_steps_food_for_thought_and_troubleshooting(folder):
    for name, required in REQUIRED.items():
        found = sections((folder / name).read_text(encoding="utf-8"))
        missing = [r for r in required if not any(s.startswith(r) for s in found)]
        assert not missing, f"{folder.name}/{name} lacks the sections {missing}"


@pytest.mark.parametrize("folder", EXERCISES, ids=lambda p: p.name)
def test_the_korean_text_has_the_same_sections_and_commands(folder):
    en, ko = ((folder / n).read_text(encoding="utf-8") for n in REQUIRED)
    assert len(sections(en)) == len(sections(ko)), list(zip(sections(en), sections(ko)))
    assert commands(en) == commands(ko)


@pytest.mark.parametrize("folder", EXERCISES, ids=lambda p: p.name)
def test_every_file_a_command_names_is_there(folder):
    for command in commands((folder / "README.md").read_text(encoding="utf-8")):
        for path in re.findall(r"exercises/\S+\.(?:toml|py)", command):
            assert (ROOT / path).is_file(), f"{folder.name}: `{command}` names {path}, which does not exist"
