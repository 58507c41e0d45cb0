"""The README's "From Python" examples run as doctests."""
from __future__ import annotations

import doctest
import re
import sys
import types
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_from_python_examples(tmp_path, monkeypatch):
    """Run as a script would: in ``__main__`` (so the env class defined there pickles)."""
    monkeypatch.chdir(tmp_path)
    main = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    section = _section("From Python")
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 6 and all(">>> " in b for b in blocks)
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    test = parser.get_doctest("\n".join(blocks), {}, "README From Python", str(README), 0)
    test.globs = main.__dict__
    runner.run(test, clear_globs=False)
    results = runner.summarize(verbose=False)
    assert results.failed == 0 and results.attempted >= 25
