"""`--t2t_usr_dir`: import a user module whose decorators register problems and sets.

As in T2T, `DIR` is a Python package directory (it has an `__init__.py`, which
imports whatever modules define the user's problems and hparams sets). A single
`.py` file is accepted too. The module is imported under its directory (or file)
name; importing the same path twice is a no-op, so the decorators do not run twice.
"""

import importlib.util
import os
import sys

from t2t_videoflow.errors import UsrDirError

_IMPORTED = {}  # realpath -> module


def import_usr_dir(usr_dir):
    """Imports `usr_dir` (package directory or .py file) and returns the module.

    Raises:
      UsrDirError: the path does not exist, is a directory without `__init__.py`,
        or its import raised or exited (any BaseException but KeyboardInterrupt,
        SystemExit included; the original error is chained).
    """
    if not usr_dir:
        return None
    path = os.path.realpath(os.path.expanduser(usr_dir))
    if path in _IMPORTED:
        return _IMPORTED[path]
    if os.path.isdir(path):
        init = os.path.join(path, "__init__.py")
        if not os.path.isfile(init):
            raise UsrDirError(
                f"--t2t_usr_dir {usr_dir}: not a Python package (no __init__.py); "
                "add an __init__.py that imports your problem and hparams modules.")
        name = os.path.basename(path)
        spec = importlib.util.spec_from_file_location(name, init,
                                                      submodule_search_locations=[path])
    elif os.path.isfile(path) and path.endswith(".py"):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
    else:
        raise UsrDirError(f"--t2t_usr_dir {usr_dir} does not exist "
                          "(expected a package directory or a .py file).")
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) not in (
            os.path.join(path, "__init__.py"), path):
        raise UsrDirError(f"--t2t_usr_dir {usr_dir}: module name {name!r} clashes with an "
                          "already imported module; rename the directory.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        del sys.modules[name]
        raise
    except SystemExit as e:
        # Exiting while imported would end the tool silently (with status 0 for
        # sys.exit(0)), so it is an error naming the module.
        del sys.modules[name]
        raise UsrDirError(f"--t2t_usr_dir {usr_dir}: module {name!r} called "
                          f"sys.exit({e.code!r}) while being imported; a usr dir must "
                          "only define and register problems and hparams sets.") from e
    except BaseException as e:  # pylint: disable=broad-except  (any error of user code)
        del sys.modules[name]
        raise UsrDirError(f"--t2t_usr_dir {usr_dir}: import failed: "
                          f"{type(e).__name__}: {e}") from e
    _IMPORTED[path] = module
    return module
