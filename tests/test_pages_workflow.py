"""The GitHub Pages workflow cannot run here: read it, and check what it runs and publishes."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(job: dict) -> list[dict]:
    return job["steps"]


def uses(step: dict) -> str:
    return step.get("uses", "").split("@")[0]


def commands(job: dict) -> list[list[str]]:
    return [shlex.split(line) for step in steps(job) if "run" in step
            for line in step["run"].splitlines() if line.strip()]


def test_it_deploys_main_with_the_permissions_pages_needs():
    data = workflow()
    assert data["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in data["on"]
    assert data["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    deploy = data["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [uses(s) for s in steps(deploy)] == ["actions/deploy-pages"]


def test_the_build_runs_the_site_session_with_its_address_and_uploads_site():
    build = workflow()["jobs"]["build"]
    names = [uses(s) for s in steps(build)]
    # the address comes from configure-pages, which must run before the build step
    site_step = next(s for s in steps(build) if "nox -s site" in s.get("run", ""))
    assert names.index("actions/configure-pages") < steps(build).index(site_step)
    pages_id = next(s["id"] for s in steps(build) if uses(s) == "actions/configure-pages")
    assert site_step["env"]["SITE_URL"] == f"${{{{ steps.{pages_id}.outputs.base_url }}}}/"
    assert site_step["env"]["REPO_URL"] == "${{ github.server_url }}/${{ github.repository }}"
    ran = commands(build)
    site_command = next(c for c in ran if c[:3] == ["nox", "-s", "site"])
    assert site_command[3:] in ([], ["--", "--device", "cpu"])
    # the link check runs on what was built, before the upload
    check = next(c for c in ran if "coursebuild.sitecheck" in c)
    assert check[check.index("coursebuild.sitecheck") + 1] == "site"
    upload = next(s for s in steps(build) if uses(s) == "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "site"
    assert steps(build).index(upload) > steps(build).index(site_step)
    python = next(s for s in steps(build) if uses(s) == "actions/setup-python")
    low = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert tuple(map(int, python["with"]["python-version"].split("."))) >= \
        tuple(map(int, low.group(1).split(".")))


def test_what_it_runs_exists_here():
    """The nox session, the module it calls, the folder mkdocs writes, the variables
    mkdocs.yml reads: a rename anywhere breaks this test, not the deployment."""
    noxfile = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = {f.name for f in noxfile.body if isinstance(f, ast.FunctionDef)
                and any(getattr(d, "attr", None) == "session" for d in f.decorator_list)}
    assert "site" in sessions
    assert (ROOT / "lib" / "coursebuild" / "sitecheck.py").is_file()
    config = (ROOT / "mkdocs.yml").read_text()
    assert re.search(r"^site_dir: site$", config, re.M)
    assert re.search(r"^site_url: !ENV \[SITE_URL,", config, re.M)
    assert re.search(r"^repo_url: !ENV \[REPO_URL,", config, re.M)
