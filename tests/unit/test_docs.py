"""What a clone holds: the README is short and leads to every page of the manual, every link of the README
and the manual resolves inside the repository (anchors included), every shell block the pages show is run
by a test, and the files a ledger writes beside itself are ignored by git."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_readme_session import SESSIONS
from tests.markdown import anchor, blocks, headings, links, pages

ROOT = Path(__file__).resolve().parents[2]
MANUAL = sorted(p.name for p in (ROOT / "docs").glob("*.md"))

# The shell blocks that are not client sessions, each with the test that runs its commands: (page,
# heading) -> (a command the block shows, the test file, a string by which that test runs the command).
RUN_ELSEWHERE: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("README.md", "## Two commands"): [
        ("./dev serve", "tests/e2e/test_slips.py", 'str(ROOT / "dev"), "serve"'),
        ("./dev test", ".ci/run", "exec ./dev test"),
    ],
    ("docs/api.md", "### A session with curl"): [
        # test_http_session.py runs this very block, the first under "## HTTP API".
        ("post /number-recycling/v0.2/check", "tests/e2e/test_http_session.py", '"## HTTP API"'),
    ],
    ("docs/operations.md", "## Security: tokens, roles, TLS"): [
        # test_docs_blocks.py runs this very block, found by its heading.
        ("python -m ledger token --actor crm-prod --role operator", "tests/e2e/test_docs_blocks.py", "## Security"),
        ("--auth auth.toml", "tests/e2e/test_docs_blocks.py", "## Security: tokens, roles, TLS"),
        ("--tls-client-ca", "tests/e2e/test_auth_tls.py", "tls_client_ca"),
    ],
    ("docs/operations.md", "## Commands for people"): [
        # test_people_session.py runs this very block, found by its heading.
        ("python -m ledger history +8613800138000", "tests/e2e/test_people_session.py", '"## Commands for people"'),
    ],
    ("docs/operations.md", "## Read models: projections and rebuilds"): [
        ("python -m ledger serve --no-projections", "tests/e2e/test_read_model_answers.py", '"--no-projections"'),
        ("python -m ledger project ", "tests/procs.py", '"-m", "ledger", "project"'),
        ("python -m ledger project --rebuild --once", "tests/e2e/test_read_model_answers.py", '"--rebuild", "--once"'),
    ],
}


def test_the_readme_is_short_and_links_every_page_of_the_manual() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    targets = {t.split("#")[0] for t in links("README.md")}
    assert [f"docs/{name}" for name in MANUAL if f"docs/{name}" not in targets] == []
    assert "[docs/DESIGN.md](docs/DESIGN.md)" in readme
    assert "CHANGELOG.md" in targets
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    assert "API" in design and len(design.splitlines()) > 100


def test_links_and_anchors_resolve_in_the_repository() -> None:
    for page in [*pages(), "CHANGELOG.md"]:
        text = (ROOT / page).read_text()
        assert "../shared" not in text, page
        for target in links(page):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            resolved = ((ROOT / page).parent / path).resolve() if path else ROOT / page
            assert resolved.exists(), f"{page}: {target}"
            assert ROOT in resolved.parents, f"{page}: {target} leaves the repository"
            if fragment and resolved.suffix == ".md":
                names = {anchor(h) for h in headings(resolved.relative_to(ROOT).as_posix())}
                assert fragment in names, f"{page}: {target} names no heading"


def test_the_site_lists_every_page_of_the_manual() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs" and config["strict"] is True
    listed = sorted(next(iter(entry.values())) for entry in config["nav"])
    assert listed == MANUAL
    assert "mkdocs build --strict" in (ROOT / "dev").read_text()


def test_every_shell_block_is_run_by_a_test() -> None:
    sessions = {where for blocks_of_session in SESSIONS.values() for where in blocks_of_session}
    shell = [b for page in pages() for b in blocks(page) if b.lang in ("sh", "bash", "console", "shell")]
    unaccounted = []
    for block in shell:
        where = (block.path, block.heading)
        if where in sessions:
            continue
        if where not in RUN_ELSEWHERE:
            unaccounted.append(where)
            continue
        for shown, test, runs in RUN_ELSEWHERE[where]:
            assert shown in block.body, f"{where}: the block no longer shows {shown!r}"
            assert runs in (ROOT / test).read_text(), f"{test} no longer runs {shown!r}"
    assert unaccounted == []
    assert {(b.path, b.heading) for b in shell} >= set(RUN_ELSEWHERE) | sessions


def test_the_policy_file_shown_is_the_policy_the_server_reads(tmp_path: Path) -> None:
    from ledger.policy import Policy

    (shown,) = [b.body for b in blocks("docs/operations.md") if b.lang == "toml"]
    path = tmp_path / "policy.toml"
    path.write_text(shown)
    policy = Policy.from_toml(path)
    values = tomllib.loads(shown)
    assert policy.quarantine_days == values["quarantine_days"] == 90
    assert policy.quarantine_days_for("+12015550123") == values["jurisdictions"]["+1"]["quarantine_days"]


def test_every_file_a_ledger_writes_is_ignored() -> None:
    patterns = [p.strip() for p in (ROOT / ".gitignore").read_text().splitlines() if p.strip()]
    for name in (
        "ledger.db",
        "ledger.db-wal",
        "ledger.keys.db",
        "ledger.views.db",
        "ledger.views.db-wal",
        "ledger.views.db-shm",
        "ledger.master.key",
    ):
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


def test_every_option_of_the_command_synopsis_is_one_the_command_takes() -> None:
    from ledger.__main__ import build_parser

    synopses = [
        b.body
        for page, heading in (("README.md", "## Two commands"), ("docs/operations.md", "## Running the server"))
        for b in blocks(page)
        if b.heading == heading and b.lang == "" and "python -m ledger serve" in b.body
    ]
    assert len(synopses) == 2 and synopses[0] == synopses[1]
    shown: dict[str, set[str]] = {}
    command = ""
    for line in synopses[0].splitlines():
        if line.startswith("python -m ledger "):
            command = line.split()[3]
        shown.setdefault(command, set()).update(re.findall(r"--[a-z][a-z-]*", line))
    assert set(shown) == {"serve", "project", "audit-views", "token", "keys"}
    for command, options in shown.items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        taken = set(re.findall(r"--[a-z][a-z-]*", out.getvalue()))
        assert options - taken == set(), command
