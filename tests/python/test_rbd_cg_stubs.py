"""The shipped stubs (rbd_cg/__init__.pyi, from python/rbd_cg.pyi) match the module."""

import ast
import inspect
import os

import rbd_cg

STUB = os.path.join(os.path.dirname(rbd_cg.__file__), "__init__.pyi")


def stub_tree():
    with open(STUB) as f:
        return ast.parse(f.read())


def stub_params(fn):
    """(name, kind, has default) of a stub function, without self."""
    a = fn.args
    out = [(p.arg, "positional", False) for p in a.posonlyargs + a.args]
    for i, default in enumerate(reversed(a.defaults)):
        name, kind, _ = out[len(out) - 1 - i]
        out[len(out) - 1 - i] = (name, kind, True)
    out += [(p.arg, "keyword", d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return [p for p in out if p[0] != "self"]


def runtime_params(obj):
    kinds = {inspect.Parameter.KEYWORD_ONLY: "keyword"}
    return [
        (p.name, kinds.get(p.kind, "positional"), p.default is not inspect.Parameter.empty)
        for p in inspect.signature(obj).parameters.values()
        if p.name != "self"
    ]


def test_shipped_with_py_typed():
    assert os.path.exists(STUB)
    assert os.path.exists(os.path.join(os.path.dirname(rbd_cg.__file__), "py.typed"))


def test_module_names_match():
    tree = stub_tree()
    stub_classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    # Module constants (python3-rbd's group states and flags) are annotated names.
    stub_constants = {
        node.target.id for node in tree.body if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    runtime = {name for name in dir(rbd_cg) if not name.startswith("_") and name != "rbd_cg"}
    constants = {name for name in runtime if isinstance(getattr(rbd_cg, name), int)}
    assert constants <= stub_constants, constants - stub_constants
    runtime -= constants
    assert runtime <= set(stub_classes), runtime - set(stub_classes)
    for name, node in stub_classes.items():
        if name in runtime:
            continue
        # everything else in the stub is a TypedDict describing a result
        assert any(getattr(b, "id", None) == "TypedDict" for b in node.bases), name


def test_methods_and_signatures_match():
    tree = stub_tree()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in ("Cluster", "Groups", "RBD", "Group"):
            continue
        cls = getattr(rbd_cg, node.name)
        stub_methods = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
        runtime_methods = {n for n in vars(cls) if not n.startswith("_") or n in ("__enter__", "__exit__")}
        assert set(stub_methods) - {"__init__"} == runtime_methods, node.name
        for name, fn in stub_methods.items():
            target = cls if name == "__init__" else getattr(cls, name)
            if isinstance(inspect.getattr_static(cls, name, None), property) or type(
                inspect.getattr_static(cls, name, None)
            ).__name__ == "getset_descriptor":
                continue
            assert stub_params(fn) == runtime_params(target), f"{node.name}.{name}"
            assert ast.get_docstring(fn), f"{node.name}.{name} has no docstring in the stub"
            assert target.__doc__, f"{node.name}.{name} has no docstring"
