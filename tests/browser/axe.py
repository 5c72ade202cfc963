"""axe-core (vendored: tests/browser/vendor/axe.min.js, 4.x, MPL-2.0) run in the page under test with WCAG 2.1 A/AA
rules. Nothing is downloaded when the tests run. Injected through the DevTools protocol (page.evaluate), which the
pages' Content-Security-Policy does not apply to, so the pages are checked exactly as served."""

from pathlib import Path

AXE_SOURCE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text()
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ") + "  " + n.html.slice(0, 160)),
  }));
}"""


def axe_violations(page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    return page.evaluate(RUN, WCAG_21_AA)


def assert_accessible(page) -> None:
    """No WCAG 2.1 AA violation that axe can find on the page as it is now."""
    violations = axe_violations(page)
    report = "\n".join(f"{v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in violations)
    assert violations == [], f"{page.url}\n{report}"
