"""The exceptions scenetok raises. Their messages are the library's: the same words the
``scenetok`` command prints after ``error:``, naming the file, column, record or frame and
what was expected."""


class ScenetokError(Exception):
    """Base class of every error scenetok raises on data or arguments."""


class InvalidInputError(ScenetokError, ValueError):
    """The input's content or an argument is not what was expected: a corrupt or truncated
    file, a missing or mistyped column, an unknown enum value, arrays of the wrong shape,
    non-finite predictions, predictions that do not match the scenario."""


class InputNotFoundError(ScenetokError, FileNotFoundError):
    """A file or folder that is not there (or a model file that was not found)."""


class ScenetokIOError(ScenetokError, OSError):
    """The file system refused for another reason (permissions, disk full)."""


class ModelError(ScenetokError, RuntimeError):
    """A model, its weights or the compute device refused."""


__all__ = ["ScenetokError", "InvalidInputError", "InputNotFoundError", "ScenetokIOError", "ModelError"]
