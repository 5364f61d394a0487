"""moto's internals change between its versions: only sandbox/moto_patches.py names them (each use there
with its reason), so a moto upgrade is reviewed in one file. Elsewhere only moto's public ``mock_aws``."""

import ast

from tests.conftest import ROOT

PUBLIC = {"mock_aws"}
ALLOWED = {"sandbox/moto_patches.py"}


def moto_imports(tree: ast.AST) -> list[str]:
    """Every import of moto in the module, at any depth (a lazy import in a function counts too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "moto"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "moto":
            names = {a.name for a in node.names}
            found += [f"{node.module}: {', '.join(sorted(names))}"] if node.module != "moto" or names - PUBLIC else []
    return found


def test_only_moto_patches_names_moto_internals() -> None:
    leaks = {
        str(path.relative_to(ROOT)): imports
        for folder in ("sandbox", "tools", "tests", "bench", "template_model", "functions", "layers")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in ALLOWED
        and (imports := moto_imports(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert leaks == {}, "move these behind sandbox/moto_patches.py"


def test_a_lazy_import_of_a_moto_internal_is_found() -> None:
    source = "def backends():\n    from moto.ec2.models import ec2_backends\n    return ec2_backends\n"
    assert moto_imports(ast.parse(source)) == ["moto.ec2.models: ec2_backends"]
    assert moto_imports(ast.parse("from moto import mock_aws\n")) == []
