"""Run by each lesson kernel at start-up (``PYTHONSTARTUP``): record what the lesson reads.

It installs an audit hook (PEP 578) that notes every file opened for reading, and registers
a module ``_coursebuild_probe`` whose ``report()`` the build calls in a last, hidden cell.
``report()`` prints one JSON line: the modules in ``sys.modules`` whose file lies outside the
standard library and site-packages (``[name, file]``), and the files opened for reading
outside them. The build turns that into the lesson's depfile (``keys.depfile``) and removes
the cell. Everything is defined inside a function: the lesson's namespace gets no names.
This file is not imported as part of ``coursebuild``; it runs in the kernel on its own.
"""


def _install() -> None:
    import json
    import os
    import site
    import sys
    import sysconfig
    import types

    opened: set[str] = set()

    def hook(event, args):
        if event != "open":
            return
        path, mode = args[0], args[1]
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            return
        if isinstance(path, (str, bytes, os.PathLike)):
            opened.add(os.path.abspath(os.fsdecode(path)))

    def excluded_roots() -> list[str]:
        paths = sysconfig.get_paths()
        roots = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
        roots += list(site.getsitepackages()) + [site.getusersitepackages()]
        return [os.path.join(os.path.realpath(r), "") for r in roots if r]

    def ours(path: str, roots: list[str]) -> bool:
        parts = set(path.split(os.sep))
        return (not path.startswith(tuple(roots)) and "site-packages" not in parts
                and "dist-packages" not in parts and "__pycache__" not in parts
                and not path.endswith((".pyc", ".pyo")))

    def report() -> None:
        roots = excluded_roots()
        modules = []
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and os.path.isfile(file):
                file = os.path.realpath(file)
                if ours(file, roots):
                    modules.append([name, file])
        files = sorted({os.path.realpath(p) for p in list(opened)})
        files = [f for f in files if os.path.isfile(f) and ours(f, roots)]
        print(json.dumps({"modules": sorted(modules), "opened": files}))

    sys.addaudithook(hook)
    probe = types.ModuleType("_coursebuild_probe", "The lesson kernel's depfile probe.")
    probe.report = report
    sys.modules[probe.__name__] = probe


_install()
del _install
