"""The type stubs name everything the extension module exports, and every method of its classes."""

import ast
from pathlib import Path

import scenetok._scenetok as native

STUBS = Path(__file__).resolve().parents[1] / "scenetok" / "_scenetok.pyi"


def stub_names():
    tree = ast.parse(STUBS.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top.add(node.name)
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
    return top, members


def test_every_export_and_method_has_a_stub():
    top, members = stub_names()
    exported = {n for n in dir(native) if not n.startswith("_")} | {"__version__"}
    assert exported <= top, f"without a stub: {sorted(exported - top)}"
    for name, methods in members.items():
        cls = getattr(native, name, None)
        if cls is None:
            continue
        public = {m for m in vars(cls) if not m.startswith("_")}
        assert public <= methods, f"{name}: without a stub: {sorted(public - methods)}"
