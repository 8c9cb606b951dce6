"""How the package is laid out and started: the oldest Python it supports can parse it,
and nothing of ours lands on the app's sys.path."""

import ast
import os
import unittest

from helpers import PACKAGE_DIR, PYTHON_DIR

from emperor_worker.protocols import PROTOCOLS, make_protocol
from emperor_worker.protocols.base import Protocol
from emperor_worker.worker import app_sys_path

OLDEST = (3, 9)  # MIN_PYTHON in packages/vassal/src/master/python-interpreter.ts


def sources():
    for root, dirs, files in os.walk(PYTHON_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)


class Layout(unittest.TestCase):
    def test_every_module_parses_as_the_oldest_supported_python(self):
        files = list(sources())
        self.assertGreater(len(files), 10)
        for path in files:
            with open(path, encoding="utf-8") as f:
                ast.parse(f.read(), path, feature_version=OLDEST)

    def test_the_launchers_directory_holds_only_the_launcher_and_the_package(self):
        # Python puts this directory first on sys.path: nothing in it may shadow an app's imports.
        self.assertEqual(sorted(n for n in os.listdir(PYTHON_DIR) if n != "__pycache__"), ["emperor-worker.py", "emperor_worker"])
        self.assertTrue(os.path.isfile(os.path.join(PACKAGE_DIR, "__init__.py")))

    def test_the_apps_sys_path(self):
        ours = PYTHON_DIR
        path = [ours, "/usr/lib/python311.zip", "/usr/lib/python3.11", ours + "/", "/site-packages"]
        self.assertEqual(
            app_sys_path(path, ours, ["/srv/lib", "/srv/vendor"], "/srv/app"),
            ["/srv/lib", "/srv/vendor", "/srv/app", "/usr/lib/python311.zip", "/usr/lib/python3.11", "/site-packages"],
        )

    def test_every_protocol_is_a_protocol(self):
        self.assertEqual(sorted(PROTOCOLS), ["fastcgi", "http", "uwsgi"])
        for name, cls in PROTOCOLS.items():
            p = make_protocol(name, 4096, ("h", "80", ""), lambda: "")
            self.assertIsInstance(p, Protocol)
            self.assertEqual(p.name, name)
            for method in ("head_ready", "read_request", "response_head", "refusal"):
                self.assertIsNot(getattr(cls, method), getattr(Protocol, method), "%s.%s" % (cls.__name__, method))
        with self.assertRaises(ValueError):
            make_protocol("scgi", 4096, ("h", "80", ""), lambda: "")


if __name__ == "__main__":
    unittest.main()
