"""JUnit XML from a report's policy checks: one test case per check, one suite per risk area."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reports._sanitize import sanitize_text as clean
from reports._schema import AuditReport


def render_junit(report: AuditReport) -> str:
    """JUnit XML of ``report.policy`` (an empty suite list when no policy was applied).
    Warning-severity failures are reported as passing cases with the message in system-out,
    so CI test views show them without failing the job. Every string from the report goes
    through ``sanitize_text``: names and messages carry model output and user-file text, and
    XML 1.0 has no way to write control characters, so the document always parses."""
    root = ET.Element("testsuites", name=clean(f"lm-risk-audit {report.model.id}", newlines=False))
    checks = report.policy.checks if report.policy else []
    names = {a.id: a.name for a in report.areas}
    for area in dict.fromkeys(c.area for c in checks):
        cases = [c for c in checks if c.area == area]
        failures = sum(1 for c in cases if not c.passed and c.severity == "block")
        suite_name = f"{area}. {names.get(area, 'no area')}" if area else "audit"
        suite = ET.SubElement(root, "testsuite", name=clean(suite_name, newlines=False),
                              tests=str(len(cases)), failures=str(failures), errors="0", skipped="0")
        for c in cases:
            case = ET.SubElement(suite, "testcase", name=clean(c.name, newlines=False),
                                 classname=clean(f"lm-audit.{area or 'audit'}.{c.risk or c.probe or 'check'}",
                                                 newlines=False))
            if not c.passed and c.severity == "block":
                fail = ET.SubElement(case, "failure", message=clean(c.message, newlines=False), type="policy")
                fail.text = clean(f"{c.message}\nbound: {c.bound}\nseverity: {c.severity}")
            elif not c.passed:
                ET.SubElement(case, "system-out").text = clean(f"warning: {c.message}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
