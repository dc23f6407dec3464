"""Known vulnerabilities in both environments, with pip-audit (`make audit`; not part of `make test`).

Audits what is installed, not what the requirements files say:
- app (.venv): `.venv/bin/pip-audit` over its own environment (the `pip list` of .venv's Python);
- rasa (.venv-rasa): the same pip-audit with `--path .venv-rasa/lib/python3.10/site-packages`, which
  lists what pip installed there (pip, setuptools and the --no-deps packages included).

Every advisory found must be listed in requirements/accepted-advisories.txt with a justification, or
the run fails (exit 1) and prints the package, version, advisory and fix versions.

pip-audit needs its advisory service (PyPI's per-version JSON API by default, or OSV) on the network.
When the service cannot be reached, or answers "not found" for most packages (as PyPI's per-version
API does from a machine that reaches only a package mirror), the environment is NOT AUDITED: this is
printed loudly and exits 0, or exits 1 when AUDIT_REQUIRED=1.

    .venv/bin/python -m scripts.audit [--service pypi|osv|esms] [--accepted FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = ROOT / ".venv" / "bin" / "pip-audit"
ACCEPTED = ROOT / "requirements" / "accepted-advisories.txt"
CACHE = ROOT / "build" / "pip-audit-cache"
SERVICE_URLS = {
    "pypi": "https://pypi.org/pypi/<package>/<version>/json",
    "osv": "https://api.osv.dev/v1/query",
    "esms": "https://advisories.ecosyste.ms/api/v1/advisories",
}
TIMEOUT_SECONDS = 900
ADVISORY_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*$")
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
PLACEHOLDERS = {"-", "todo", "tbd", "fixme", "n/a", "na", "none", "?"}
NOT_FOUND = "not found on pypi"
# What pip-audit (or requests under it) prints when the service is not there or answers with an error.
UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|NameResolutionError|"
    r"Failed to resolve|Connection refused|Could not connect|network may be blocking|"
    r"ServiceError|HTTPError|TooManyRedirects|not redirecting properly"
)


class AcceptedListError(ValueError):
    """The accepted-advisories file is malformed."""


@dataclass(frozen=True)
class Accepted:
    """One accepted advisory: its ID, the package it covers and why it is acceptable."""

    advisory: str
    package: str
    justification: str
    line: int


@dataclass(frozen=True)
class Finding:
    """One advisory pip-audit reported for an installed package."""

    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]
    description: str
    justification: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What auditing one environment found."""

    environment: str
    audited: int = 0
    findings: tuple[Finding, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    not_audited: str | None = None
    error: str | None = None

    @property
    def accepted(self) -> list[Finding]:
        """Return the findings listed in the accepted file."""
        return [f for f in self.findings if f.justification is not None]

    @property
    def unaccepted(self) -> list[Finding]:
        """Return the findings that fail the run."""
        return [f for f in self.findings if f.justification is None]


def canonical(name: str) -> str:
    """Return a package name normalised as PyPI does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_accepted(text: str, source: str = "accepted-advisories.txt") -> dict[tuple[str, str], Accepted]:
    """Parse the accepted list into {(ADVISORY ID, package): entry}; raise AcceptedListError if malformed."""
    accepted: dict[tuple[str, str], Accepted] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        fields = line.split(None, 2)
        if len(fields) < 2:
            raise AcceptedListError(f"{where}: expected '<ID>  <package>  <justification>', got {line!r}")
        advisory, package = fields[0], fields[1]
        justification = fields[2].strip() if len(fields) == 3 else ""
        if not ADVISORY_ID.match(advisory):
            raise AcceptedListError(
                f"{where}: {advisory!r} is not an advisory ID (PYSEC-…, GHSA-…, CVE-…); "
                "expected '<ID>  <package>  <justification>'"
            )
        if not PACKAGE_NAME.match(package):
            raise AcceptedListError(f"{where}: {package!r} is not a package name")
        if not justification or justification.lower() in PLACEHOLDERS:
            raise AcceptedListError(
                f"{where}: {advisory} {package} has no justification: "
                "say why the vulnerable code path is not reachable in how we run it"
            )
        key = (advisory.upper(), canonical(package))
        if key in accepted:
            raise AcceptedListError(
                f"{where}: {advisory} {package} is already accepted on line {accepted[key].line}"
            )
        accepted[key] = Accepted(advisory, canonical(package), justification, number)
    return accepted


def shown(path: Path) -> str:
    """Return a path relative to the repository when it is inside it, for messages."""
    full = path.resolve()
    return str(full.relative_to(ROOT) if full.is_relative_to(ROOT) else path)


def load_accepted(path: Path = ACCEPTED) -> dict[tuple[str, str], Accepted]:
    """Read and parse the accepted-advisories file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise AcceptedListError(f"{shown(path)}: cannot read it ({problem.strerror})") from problem
    return parse_accepted(text, source=shown(path))


def acceptance(package: str, ids: list[str], accepted: dict[tuple[str, str], Accepted]) -> Accepted | None:
    """Return the accepted entry covering this package and any of the advisory's IDs, if any."""
    for advisory in ids:
        entry = accepted.get((advisory.upper(), canonical(package)))
        if entry:
            return entry
    return None


def classify(
    environment: str, report: dict[str, Any], accepted: dict[tuple[str, str], Accepted], service_url: str
) -> Outcome:
    """Turn a pip-audit JSON report into an Outcome, applying the accepted list."""
    dependencies = report.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        return Outcome(environment, error="pip-audit's report lists no packages")
    skipped = tuple(
        (str(d["name"]), str(d["skip_reason"])) for d in dependencies if d.get("skip_reason") is not None
    )
    findings = []
    for dep in dependencies:
        if dep.get("skip_reason") is not None:
            continue
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            entry = acceptance(dep["name"], ids, accepted)
            findings.append(
                Finding(
                    package=dep["name"],
                    version=dep["version"],
                    advisory=vuln["id"],
                    aliases=tuple(a for a in vuln.get("aliases", []) if a != vuln["id"]),
                    fix_versions=tuple(vuln.get("fix_versions", [])),
                    description=" ".join(str(vuln.get("description") or "").split()),
                    justification=entry.justification if entry else None,
                )
            )
    # PyPI answers 404 for a package it does not know; for most of an environment, it is not answering.
    not_found = sum(NOT_FOUND in reason.lower() for _, reason in skipped)
    not_audited = (
        f"the advisory service {service_url} could not be reached from this machine "
        f"(it answered 404 'not found' for {not_found} of {len(dependencies)} packages)"
        if not_found * 2 > len(dependencies)
        else None
    )
    return Outcome(
        environment,
        audited=len(dependencies) - len(skipped),
        findings=tuple(findings),
        skipped=skipped,
        not_audited=not_audited,
    )


def last_error_line(stderr: str) -> str:
    """Return the last line of pip-audit's stderr that names an error, for the message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if UNREACHABLE.search(line) or "Error" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def outcome_of_run(
    environment: str,
    returncode: int,
    stdout: str,
    stderr: str,
    accepted: dict[tuple[str, str], Accepted],
    service_url: str,
) -> Outcome:
    """Classify one pip-audit run: its JSON report, or why there is none."""
    try:
        report = json.loads(stdout)
    except ValueError:
        report = None
    if isinstance(report, dict) and "dependencies" in report:
        # pip-audit exits 1 when it found advisories; the report says which.
        return classify(environment, report, accepted, service_url)
    detail = last_error_line(stderr)
    if UNREACHABLE.search(stderr):
        return Outcome(
            environment,
            not_audited=f"the advisory service {service_url} could not be reached from this machine "
            f"({detail})",
        )
    return Outcome(environment, error=f"pip-audit failed with exit code {returncode}: {detail}")


def unseen(outcomes: list[Outcome], accepted: dict[tuple[str, str], Accepted]) -> list[Accepted]:
    """Return accepted entries that no audited environment reported (candidates for removal)."""
    seen = {
        (advisory.upper(), canonical(f.package))
        for o in outcomes
        for f in o.findings
        for advisory in (f.advisory, *f.aliases)
    }
    return [entry for key, entry in accepted.items() if key not in seen]


def exit_code(outcomes: list[Outcome], required: bool) -> int:
    """Return 1 for an error, an unaccepted advisory, or (when required) an environment not audited."""
    for outcome in outcomes:
        if outcome.error or outcome.unaccepted or (required and outcome.not_audited):
            return 1
    return 0


def describe(finding: Finding) -> str:
    """Return one line naming the package, version, advisory, aliases and fix versions."""
    aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
    fixes = ", ".join(finding.fix_versions) or "none released"
    return f"{finding.package} {finding.version}: {finding.advisory}{aliases}; fix versions: {fixes}"


def summary(outcome: Outcome, required: bool) -> list[str]:
    """Return the lines printed for one environment."""
    lines = [
        f"{outcome.environment}: {outcome.audited} packages audited, "
        f"{len(outcome.findings)} advisories found, {len(outcome.accepted)} accepted, "
        f"{len(outcome.unaccepted)} unaccepted, {len(outcome.skipped)} skipped"
    ]
    if outcome.error:
        lines.append(f"ERROR: {outcome.environment}: {outcome.error}")
    if outcome.not_audited:
        consequence = (
            "AUDIT_REQUIRED=1, so this fails"
            if required
            else "passing anyway; set AUDIT_REQUIRED=1 to make this fail"
        )
        lines.append(f"NOT AUDITED: {outcome.environment}: {outcome.not_audited}; {consequence}")
    for finding in outcome.unaccepted:
        lines.append(f"UNACCEPTED: {describe(finding)}")
        if finding.description:
            lines.append(f"    {finding.description[:200]}")
    for finding in outcome.accepted:
        lines.append(f"accepted: {describe(finding)}")
        lines.append(f"    because: {finding.justification}")
    if outcome.not_audited and outcome.skipped:
        lines.append(f"skipped: {len(outcome.skipped)} packages, e.g. {outcome.skipped[0][1]}")
    else:
        lines.extend(f"skipped: {name}: {reason}" for name, reason in outcome.skipped)
    return lines


def rasa_site_packages() -> Path:
    """Return the Rasa environment's site-packages folder."""
    found = sorted((ROOT / ".venv-rasa" / "lib").glob("python3*/site-packages"))
    if len(found) != 1:
        raise SystemExit(f"expected one .venv-rasa/lib/python3*/site-packages, found {len(found)}")
    return found[0]


def commands(service: str) -> dict[str, list[str]]:
    """Return the pip-audit command for each environment."""
    common = [
        str(PIP_AUDIT),
        "--vulnerability-service",
        service,
        "--format",
        "json",
        "--desc",
        "on",
        "--aliases",
        "on",
        "--output",
        "-",
        "--progress-spinner",
        "off",
    ]
    return {
        "app (.venv)": [*common, "--cache-dir", str(CACHE / "app")],
        "rasa (.venv-rasa)": [
            *common,
            "--cache-dir",
            str(CACHE / "rasa"),
            "--path",
            str(rasa_site_packages()),
        ],
    }


def run_all(service: str, accepted: dict[tuple[str, str], Accepted]) -> list[Outcome]:
    """Run pip-audit for both environments at once and classify each run."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PIPAPI_PYTHON_LOCATION"}}
    running = {
        name: subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, command in commands(service).items()
    }
    outcomes = []
    for name, process in running.items():
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            stdout, stderr = "", f"ConnectionError: no answer within {TIMEOUT_SECONDS} s"
        outcomes.append(
            outcome_of_run(name, process.returncode, stdout, stderr, accepted, SERVICE_URLS[service])
        )
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Audit both environments; print a summary each; exit 1 on an unaccepted advisory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", choices=sorted(SERVICE_URLS), default="pypi", help="advisory service")
    parser.add_argument("--accepted", type=Path, default=ACCEPTED, help="the accepted-advisories file")
    args = parser.parse_args(argv)
    required = os.environ.get("AUDIT_REQUIRED", "").strip() == "1"
    try:
        accepted = load_accepted(args.accepted)
    except AcceptedListError as problem:
        print(f"audit: {problem}", file=sys.stderr)
        return 1
    outcomes = run_all(args.service, accepted)
    for outcome in outcomes:
        print("\n".join(summary(outcome, required)))
    if all(not o.not_audited and not o.error for o in outcomes):
        for entry in unseen(outcomes, accepted):
            print(f"note: accepted {entry.advisory} {entry.package} (line {entry.line}) was not reported")
    code = exit_code(outcomes, required)
    unaccepted = sum(len(o.unaccepted) for o in outcomes)
    if unaccepted:
        print(
            f"audit failed: {unaccepted} unaccepted advisories; upgrade, or justify them in "
            f"{shown(args.accepted)}"
        )
    elif code:
        print("audit failed")
    elif any(o.not_audited for o in outcomes):
        print("audit: NOT AUDITED (see above); no advisories were checked")
    else:
        print("audit: no unaccepted advisories")
    return code


if __name__ == "__main__":
    sys.exit(main())
