"""Rewrite the README's configuration table from template.yaml's Parameters (`make docs`)."""

from pathlib import Path

from sandbox.template import ROOT, load_template

START = "| Parameter | Default | Description |"
END = "\n## "


def table() -> str:
    rows = [START, "| --- | --- | --- |"]
    for name, spec in load_template()["Parameters"].items():
        description = " ".join(str(spec.get("Description", "")).split())
        rows.append(f"| `{name}` | `{spec.get('Default', '')}` | {description} |")
    return "\n".join(rows) + "\n"


def main(readme: Path = ROOT / "README.md") -> int:
    text = readme.read_text(encoding="utf-8")
    start = text.index(START)
    end = text.index(END, start)
    readme.write_text(text[:start] + table() + text[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
