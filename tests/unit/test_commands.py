"""The programs halab runs (lab/net/commands.py) and the packages the installer installs stay in step."""
import ast
import re
from pathlib import Path

from lab.net.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = {"cmd", "popen", "create_subprocess_exec", "run", "Popen", "check_output", "spawn"}


def installed_packages():
    script = (ROOT / "scripts" / "install-system.sh").read_text()
    return set(re.search(r"PACKAGES=\((.*?)\)", script, re.S).group(1).split())


def test_every_program_comes_from_a_package_the_installer_installs():
    packages = installed_packages()
    assert {pkg for pkg, _ in COMMANDS.values()} <= packages, "add the package to scripts/install-system.sh"
    assert "procps" in packages  # Mininet calls sysctl; minimal images lack it (issue seen on Debian 13 minbase)


def _first_word(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value.split() or [None])[0]
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return (str(node.values[0].value).split() or [None])[0]
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        return _first_word(node.elts[0])
    return None


def test_every_program_the_code_runs_is_declared():
    found = {}
    for path in [*(ROOT / "lab").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                word = _first_word(node.args[0])
                if name == "run_ip":
                    word = "ip"
                if name in RUNNERS | {"run_ip"} and word and re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    found.setdefault(word, f"{path.relative_to(ROOT)}:{node.lineno}")
            # daemons started from a command list: cmd = ["keepalived", ...] / return ["haproxy", ...]
            if isinstance(node, ast.List) and len(node.elts) > 2 and _first_word(node) in COMMANDS:
                found.setdefault(_first_word(node), f"{path.relative_to(ROOT)}:{node.lineno}")
    shell = {"kill", "python3", "echo", "sleep", "cat", "true", "for"}  # the shell's own, or python itself
    undeclared = {w: where for w, where in found.items() if w not in COMMANDS and w not in shell}
    assert not undeclared, f"declare these in lab/net/commands.py with their package: {undeclared}"
    assert {"ip", "nft", "tcpdump", "wrk", "keepalived"} <= set(found)  # the scan sees real call sites
