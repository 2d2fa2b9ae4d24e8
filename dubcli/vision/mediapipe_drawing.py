"""MediaPipe's drawing helpers made to load on first use instead of with `import mediapipe`.

Importing any part of mediapipe runs `mediapipe.python.solutions`, which imports every solution
and its drawing helpers, and `drawing_utils` imports matplotlib.pyplot and cv2: 0.7 s of the
1.1-1.2 s the import takes on this project's 2-core machine (`python -X importtime`; issue 15),
spent on the main thread before a dub's first cue can be tracked. dubcli never draws.

So, before mediapipe is first imported, `drawing_utils` and `drawing_styles` are put in
sys.modules as modules whose code has not run yet: the package's `import` statements find them
there, and the first name looked up in one of them (`drawing_utils.DrawingSpec`, anyone's use)
runs its code, once, into that same module object. importlib's LazyLoader cannot do this: the
import statement itself reads the module's `__spec__`, which makes a LazyLoader module load.
Written for mediapipe 0.10.21 (pinned); a layout it does not recognise leaves the import as is.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
import types
from pathlib import Path

_PACKAGE = "mediapipe.python.solutions"
_DEFERRED = ("drawing_utils", "drawing_styles")
_LOCK = threading.RLock()


class _RunsOnFirstUse(types.ModuleType):
    """A module whose code runs when a name it does not have yet is first looked up."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # module machinery probing (__path__, __all__, ...)
            raise AttributeError(name)
        with _LOCK:
            if type(self) is _RunsOnFirstUse:
                self.__class__ = types.ModuleType  # a plain module from here on
                try:
                    self.__spec__.loader.exec_module(self)
                except BaseException:
                    sys.modules.pop(self.__name__, None)  # the next import tries afresh
                    raise
        return getattr(self, name)


def defer_drawing_modules() -> list[str]:
    """Put the not-yet-run drawing modules in sys.modules before mediapipe's first import
    (module doc); returns their names (none if mediapipe is imported already or laid out
    otherwise). Call `bind_deferred` after the import."""
    if "mediapipe" in sys.modules:
        return []
    spec = importlib.util.find_spec("mediapipe")  # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "python" / "solutions"
    names = []
    for short in _DEFERRED:
        name, path = f"{_PACKAGE}.{short}", root / f"{short}.py"
        if name in sys.modules or not path.is_file():
            continue
        loader = importlib.machinery.SourceFileLoader(name, str(path))
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_file_location(name, path, loader=loader)
        )
        module.__class__ = _RunsOnFirstUse
        sys.modules[name] = module
        names.append(name)
    return names


def bind_deferred(names: list[str]) -> None:
    """Make the deferred modules attributes of their package (`mp.solutions.drawing_utils`),
    as a normal import would have: an import that finds a module in sys.modules does not."""
    package = sys.modules.get(_PACKAGE)
    for name in names:
        module = sys.modules.get(name)
        if package is not None and module is not None:
            setattr(package, name.rsplit(".", 1)[1], module)
