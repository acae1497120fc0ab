"""The language registry, read from ``language_codes.tsv``.

Corpora, language-ID backends and users name languages in different code spaces: Flores-200
(``swh_Latn``), Flores-101 (``swh``, ``zho_simpl``), ISO 639-1 (``sw``), ISO 639-3 (``swh``), BCP-47
(``zh-Hans``, ``pt-BR``), macrolanguages (``swa``, ``msa``) and plain names (``Swahili``,
``斯瓦希里语``).
Everything inside bayling-data uses the Flores-200 code; this module turns any of the other forms
into it, and gives each language's name in English or Chinese for prompts
(:meth:`LanguageRegistry.prompt_name`: one name per language, never shared by two rows).
"""

from __future__ import annotations

import csv
import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path

from bayling_data.errors import UnknownLanguageError

TSV_NAME = "language_codes.tsv"
COLUMNS = (
    "flores200",
    "flores101",
    "iso639_1",
    "iso639_3",
    "script",
    "name_en",
    "name_zh",
    "lid176",
    "nllb_lid",
    "langid",
    "macrolanguage",
    "tier",
)

# Codes shared by several rows (both Chinese scripts answer to `zh`, both Arabic scripts to `ar`).
# The row a bare code means is the one in the main script of the language; BCP-47 script and region
# subtags pick the others.
_REGION_SCRIPTS = {
    ("zh", "tw"): "Hant",
    ("zh", "hk"): "Hant",
    ("zh", "mo"): "Hant",
    ("zh", "cn"): "Hans",
    ("zh", "sg"): "Hans",
}
_PREFERRED_SCRIPT = {"zh": "Hans", "zho": "Hans", "cmn": "Hans", "chi": "Hans"}

# A registry name's trailing qualifier: "Acehnese (Arabic script)", "亚齐语（阿拉伯字母）".
_QUALIFIER = re.compile(r"\s*[（(][^（）()]*[）)]$")
# Prompt names that read better than the registry's "Name (qualifier)" form, by (code, column).
_PROMPT_NAMES = {
    ("zho_Hans", "name_en"): "Simplified Chinese",
    ("zho_Hant", "name_en"): "Traditional Chinese",
}


@dataclass(frozen=True)
class Language:
    """One row of the registry. Empty strings stand for "none"."""

    flores200: str
    flores101: str
    iso639_1: str
    iso639_3: str
    script: str
    name_en: str
    name_zh: str
    lid176: str
    nllb_lid: str
    langid: str
    macrolanguage: str
    tier: str

    @property
    def code(self) -> str:
        """The canonical code used everywhere in bayling-data (the Flores-200 code)."""
        return self.flores200

    def name(self, in_language: str = "en") -> str:
        """The language's name written in English (``en``) or Simplified Chinese (``zh``)."""
        lang = in_language.lower()
        if lang in ("en", "eng", "eng_latn"):
            return self.name_en
        if lang in ("zh", "zho", "zho_hans", "zh-hans"):
            return self.name_zh
        raise ValueError(f"names are kept in English and Chinese, not {in_language!r}")

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def name_column(prompt_lang: str) -> str:
    """The registry column that names languages in a prompt language: ``name_zh`` for Chinese
    prompts (``zho_Hans``, ``zh``), ``name_en`` for every other prompt language."""
    lang = prompt_lang.lower()
    return "name_zh" if lang in ("zh", "zho") or lang.startswith(("zho_", "zh-")) else "name_en"


def _prompt_names(languages: list[Language], column: str) -> dict[str, str]:
    """Every language's prompt name in one column: the registry name without its "(Arabic
    script)"-style qualifier, unless another row would then share it (Acehnese in Arabic and in
    Latin script), in which case the qualifier stays; names in :data:`_PROMPT_NAMES` win."""
    full = {lang.code: getattr(lang, column) for lang in languages}
    base = {code: _QUALIFIER.sub("", name) or name for code, name in full.items()}
    taken = Counter(base.values())
    taken.update(name for code, name in full.items() if name != base[code])
    names = {
        code: _PROMPT_NAMES.get((code, column))
        or (base[code] if taken[base[code]] == 1 else full[code])
        for code in full
    }
    # A registry whose shortened names still meet (hand-made ones) keeps its full names there.
    shared = Counter(names.values())
    return {code: full[code] if shared[name] > 1 else name for code, name in names.items()}


def _normalize_key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().casefold()
    return re.sub(r"[\s_]+", " ", text)


class LanguageRegistry:
    """Lookup of every language by any of its codes or names."""

    def __init__(self, languages: Iterable[Language]):
        self._languages: dict[str, Language] = {}
        self._by_key: dict[str, list[Language]] = {}
        for lang in languages:
            if lang.flores200 in self._languages:
                raise ValueError(f"duplicate Flores-200 code {lang.flores200!r} in the registry")
            self._languages[lang.flores200] = lang
        rows = list(self._languages.values())
        self._prompt_names = {
            column: _prompt_names(rows, column) for column in ("name_en", "name_zh")
        }
        for lang in self._languages.values():
            keys = [
                lang.flores200,
                lang.flores101,
                lang.iso639_1,
                lang.iso639_3,
                lang.name_en,
                lang.name_zh,
                self._prompt_names["name_en"][lang.code],
                self._prompt_names["name_zh"][lang.code],
                lang.lid176,
                lang.langid,
                lang.nllb_lid,
                f"{lang.iso639_3}-{lang.script}",
                f"{lang.iso639_1}-{lang.script}" if lang.iso639_1 else "",
            ]
            # "斯瓦希里语" is also asked for as "斯瓦希里" or "斯瓦希里文".
            if lang.name_zh.endswith(("语", "文")) and len(lang.name_zh) > 2:
                keys.append(lang.name_zh[:-1])
            for key in keys:
                if key:
                    bucket = self._by_key.setdefault(_normalize_key(key), [])
                    if lang not in bucket:
                        bucket.append(lang)

    def __iter__(self) -> Iterator[Language]:
        return iter(self._languages.values())

    def __len__(self) -> int:
        return len(self._languages)

    def __contains__(self, query: object) -> bool:
        if not isinstance(query, str):
            return False
        try:
            self.resolve(query)
        except UnknownLanguageError:
            return False
        return True

    def prompt_name(self, code: str, prompt_lang: str) -> str:
        """The name a prompt written in ``prompt_lang`` uses for the language ``code`` (a
        Flores-200 code): English or Chinese (see :func:`name_column`), and never the name of
        another row: "Acehnese (Arabic script)" / "亚齐语（阿拉伯字母）" next to "Acehnese (Latin
        script)", "Simplified Chinese" / "简体中文", but plain "Swahili" / "斯瓦希里语"."""
        return self._prompt_names[name_column(prompt_lang)][self.get(code).code]

    def get(self, flores200: str) -> Language:
        """The row for an exact Flores-200 code."""
        try:
            return self._languages[flores200]
        except KeyError:
            raise self._unknown(flores200) from None

    def resolve(self, query: str) -> Language:
        """Resolve a code or a name in any supported form to one language.

        Raises :class:`UnknownLanguageError` with the nearest known codes when nothing matches.
        """
        if not isinstance(query, str) or not query.strip():
            raise UnknownLanguageError(f"expected a language code or name, got {query!r}")
        if query in self._languages:
            return self._languages[query]
        key = _normalize_key(query)
        candidates = self._by_key.get(key)
        if candidates:
            return self._pick(candidates, key, script=None)
        # BCP-47: language[-Script][-REGION], e.g. zh-Hant, zh-TW, pt-BR, es-419.
        parts = re.split(r"[-_]", query.strip())
        if len(parts) > 1:
            base = self._by_key.get(_normalize_key(parts[0]))
            if base:
                script = None
                for sub in parts[1:]:
                    if len(sub) == 4 and sub.isalpha():
                        script = sub.title()
                    elif (parts[0].lower(), sub.lower()) in _REGION_SCRIPTS and script is None:
                        script = _REGION_SCRIPTS[(parts[0].lower(), sub.lower())]
                return self._pick(base, _normalize_key(parts[0]), script=script)
        raise self._unknown(query)

    def _pick(self, candidates: list[Language], key: str, script: str | None) -> Language:
        if script is not None:
            scripted = [lang for lang in candidates if lang.script == script]
            if not scripted:
                raise self._unknown(f"{key}-{script}")
            candidates = scripted
        if len(candidates) == 1:
            return candidates[0]
        preferred = _PREFERRED_SCRIPT.get(key)
        if preferred:
            for lang in candidates:
                if lang.script == preferred:
                    return lang
        # The row that is "the" language for a shared code: the one Flores-101 had, then the one
        # whose own ISO 639-3 code is the query, then the higher-resource one, then the first.
        ranked = sorted(
            candidates,
            key=lambda lang: (
                not lang.flores101,
                lang.iso639_3 != key,
                lang.tier != "high",
                lang.flores200,
            ),
        )
        return ranked[0]

    def suggestions(self, query: str, limit: int = 3) -> list[Language]:
        """The languages whose codes or names are nearest to ``query``."""
        key = _normalize_key(query)
        close = difflib.get_close_matches(key, list(self._by_key), n=limit * 3, cutoff=0.6)
        found: list[Language] = []
        for match in close:
            for lang in self._by_key[match]:
                if lang not in found:
                    found.append(lang)
        return found[:limit]

    def _unknown(self, query: str) -> UnknownLanguageError:
        near = self.suggestions(query)
        hint = (
            "; did you mean " + ", ".join(f"{lang.code} ({lang.name_en})" for lang in near) + "?"
            if near
            else "; `bayling-data langs` lists the known ones"
        )
        return UnknownLanguageError(f"unknown language {query!r}{hint}")

    def search(self, query: str) -> list[Language]:
        """Every language the query names exactly, or else those whose names contain it."""
        try:
            return [self.resolve(query)]
        except UnknownLanguageError:
            pass
        key = _normalize_key(query)
        return [
            lang
            for lang in self
            if key in _normalize_key(lang.name_en) or key in _normalize_key(lang.name_zh)
        ]

    def named_set(self, name: str) -> list[Language]:
        """Named language sets usable in recipes: ``flores200`` (204), ``flores101`` (101)."""
        if name == "flores200":
            return list(self)
        if name == "flores101":
            return [lang for lang in self if lang.flores101]
        raise KeyError(name)


NAMED_SETS = ("flores101", "flores200")


def _tsv_path() -> Path:
    packaged = resources.files("bayling_data").joinpath(TSV_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    # A source checkout or editable install: the file lives at the top of the repository.
    return Path(__file__).resolve().parent.parent / TSV_NAME


def read_registry(path: Path) -> LanguageRegistry:
    """Read a registry from a TSV file with the columns in :data:`COLUMNS`."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: expected the columns {', '.join(COLUMNS)}")
        return LanguageRegistry(Language(**row) for row in reader)


@cache
def registry() -> LanguageRegistry:
    """The registry shipped with the package (loaded once)."""
    return read_registry(_tsv_path())


def resolve(query: str) -> Language:
    """Resolve any code or name to a :class:`Language` (see :meth:`LanguageRegistry.resolve`)."""
    return registry().resolve(query)


def prompt_name(code: str, prompt_lang: str, lang_registry: LanguageRegistry | None = None) -> str:
    """A language's name in a prompt (see :meth:`LanguageRegistry.prompt_name`)."""
    return (lang_registry or registry()).prompt_name(code, prompt_lang)
