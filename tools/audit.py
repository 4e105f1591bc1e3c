"""`make audit`: known vulnerabilities in the installed packages (pip-audit), honestly reported.

    python -m tools.audit            # exit 0 checked and clean, 1 vulnerable, 2 not checked

pip-audit looks each package up in a vulnerability service (PyPI's, or OSV with
`AUDIT_SERVICE=osv`). When that service is unreachable, or a package mirror hides the packages
from it, pip-audit skips every package and still prints "No known vulnerabilities found". This
wrapper counts what was really checked: nothing checked is "NOT CHECKED" and a failure, never a
clean bill; some skipped are listed as not checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CLEAN, VULNERABLE, NOT_CHECKED = 0, 1, 2
SHOWN = 8


def main() -> int:
    service = os.environ.get("AUDIT_SERVICE", "pypi")
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", "--format", "json", "--output",
                   str(report), "--progress-spinner", "off", "--vulnerability-service", service]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            return not_checked(f"pip-audit did not finish in 15 minutes ({service})")
        if "No module named pip_audit" in done.stderr:
            return not_checked("pip-audit is not installed: pip install -e '.[dev]'")
        if not report.exists() or not report.read_text().strip():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return not_checked(f"the {service} vulnerability service could not be used: {last}")
        return summarise(json.loads(report.read_text())["dependencies"], service)


def summarise(dependencies: list[dict], service: str) -> int:
    skipped = [d for d in dependencies if "skip_reason" in d]
    checked = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [d for d in checked if d.get("vulns")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep['version']}: {ids}")
    if skipped:
        names = ", ".join(d["name"] for d in skipped[:SHOWN])
        more = f" and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
        print(
            f"not checked: {len(skipped)} package(s) ({names}{more}): {skipped[0]['skip_reason']}"
        )
    if not checked:
        return not_checked(f"the {service} service knew none of the {len(skipped)} packages")
    if vulnerable:
        print(f"{len(vulnerable)} of {len(checked)} checked packages have known vulnerabilities")
        return VULNERABLE
    print(f"no known vulnerabilities in the {len(checked)} packages checked against {service}")
    return CLEAN


def not_checked(reason: str) -> int:
    print(f"NOT CHECKED: {reason}. This is no evidence of safety; run `make audit` where the "
          f"vulnerability service is reachable (AUDIT_SERVICE=osv tries osv.dev).", file=sys.stderr)  # fmt: skip
    return NOT_CHECKED


if __name__ == "__main__":
    sys.exit(main())
