"""The conversation core never imports a channel: not Telegram's types, not our Telegram or terminal code.

Read from the source (the import statements), so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"
# The channels and the composition roots that wire them; everything else in bot/ is the core.
CHANNELS = {
    "bot.__main__",
    "bot.app",
    "bot.outbox",
    "bot.ratelimit",
    "bot.console",
    "bot.handlers",
    "bot.handlers.errors",
    "bot.handlers.moderator",
    "bot.handlers.user",
}
THIRD_PARTY_CHANNELS = ("telegram",)


def module_name(path: Path) -> str:
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Return every module a file imports (absolute names; `from x import y` counts x and x.y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def core_modules() -> dict[str, set[str]]:
    return {
        module_name(path): imports(path)
        for path in sorted(BOT.rglob("*.py"))
        if module_name(path) not in CHANNELS
    }


def test_the_channels_named_here_exist() -> None:
    present = {module_name(p) for p in BOT.rglob("*.py")}
    assert present >= CHANNELS


def test_the_core_imports_no_channel() -> None:
    core = core_modules()
    assert {"bot.relay", "bot.board", "bot.channel", "bot.cards"} <= set(core)
    for module, imported in core.items():
        telegram = sorted(i for i in imported if i.split(".")[0] in THIRD_PARTY_CHANNELS)
        assert telegram == [], f"{module} imports {telegram}"
        ours = sorted(i for i in imported if i in CHANNELS)
        assert ours == [], f"{module} imports the channel {ours}"
