"""The project's shape: no import circle, imports run one way (serve_app -> deployments -> models), and
tests share helpers only through tests/support."""

from __future__ import annotations

from tests.support.imports import cycles, import_graph, imported, modules

PACKAGES = ("serve_app", "deployments", "models", "bench")


def test_no_import_circle_anywhere_in_the_project():
    assert cycles(import_graph(PACKAGES)) == []


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_imports_run_one_way():
    forbidden = {"models": ("ray", "serve_app", "deployments", "bench"), "deployments": ("serve_app", "bench"),
                 "serve_app": ("bench",)}
    wrong = {name: sorted(n for n in imported(path) if n.split(".")[0] in forbidden[name.split(".")[0]])
             for name, path in modules(tuple(forbidden)).items()}
    assert {name: found for name, found in wrong.items() if found} == {}


def test_no_test_module_imports_another_test_module():
    wrong = {name: sorted(n for n in imported(path) if n.startswith("tests.") and not n.startswith("tests.support"))
             for name, path in modules(("tests",)).items()}
    assert {name: found for name, found in wrong.items() if found} == {}
