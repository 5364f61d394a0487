"""Rewrite the parameter tables (README, operator guide) from template.yaml's Parameters (`make docs`)."""

from pathlib import Path

from template_model import ROOT, load_template

START = "| Parameter | Default | Description |"
END = "\n## "


def table() -> str:
    rows = [START, "| --- | --- | --- |"]
    for name, spec in load_template()["Parameters"].items():
        description = " ".join(str(spec.get("Description", "")).split())
        rows.append(f"| `{name}` | `{spec.get('Default', '')}` | {description} |")
    return "\n".join(rows) + "\n"


DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "operator-guide.md")


def rewrite(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    start = text.index(START)
    end = text.index(END, start)
    document.write_text(text[:start] + table() + text[end:], encoding="utf-8")


def main() -> int:
    for document in DOCUMENTS:
        rewrite(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
