"""Language identification: a script check for every language, fastText or langid.py for the
languages a model knows, and a calibration table that says which of its answers to trust.

| module          | what                                                               |
|-----------------|--------------------------------------------------------------------|
| backends.py     | label mapping, :func:`languages_match`, script counts, the models |
| calibration.py  | :func:`calibrate` on a Flores-style set, :class:`CalibrationTable` |
| filter.py       | :class:`LanguageIdFilter` and its recipe section :class:`LidConfig` |
"""

from bayling_data.filters.lid.backends import (
    FastTextBackend,
    LangidBackend,
    LidBackend,
    ScriptBackend,
    languages_match,
    make_backend,
    map_label,
)
from bayling_data.filters.lid.calibration import (
    CalibrationTable,
    calibrate,
    calibrate_to_file,
    default_table_path,
)
from bayling_data.filters.lid.filter import LanguageIdFilter, LidConfig

__all__ = [
    "CalibrationTable",
    "FastTextBackend",
    "LangidBackend",
    "LanguageIdFilter",
    "LidBackend",
    "LidConfig",
    "ScriptBackend",
    "calibrate",
    "calibrate_to_file",
    "default_table_path",
    "languages_match",
    "make_backend",
    "map_label",
]
