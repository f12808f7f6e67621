"""Every root-free ``halab`` command an exercise text tells a student to type must run."""
import re
import shlex
from pathlib import Path

import pytest

from lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
ROOT_FREE = {"nines", "spof", "check", "topos"}


def commands():
    for readme in sorted(ROOT.glob("exercises/*/README*.md")):
        for block in re.findall(r"```sh\n(.*?)```", readme.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                words = shlex.split(line.split("#", 1)[0])
                if len(words) > 1 and words[0] == "halab" and words[1] in ROOT_FREE:
                    yield pytest.param(words[1:], id=f"{readme.parent.name}/{readme.name}: {' '.join(words[1:])}")


@pytest.mark.parametrize("argv", list(commands()))
def test_exercise_command_runs(argv, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(argv) == 0, capsys.readouterr().err


def test_the_exercises_do_ask_for_root_free_commands():
    assert len(list(commands())) >= 10
