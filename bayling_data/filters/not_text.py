"""Drop segment sides that are code, URLs, e-mail addresses, markup or JSON rather than text.

Web-mined parallel corpora carry navigation links, mail addresses, HTML and wiki fragments and
lines of source code in their text columns; a language-ID model says "English" to most of them
and the length filter lets them through. This filter measures, column-wise with Arrow's regex
kernels, how much of a side such matches cover:

1. The patterns of each family are matched in a fixed order (whole lines of code, markup, JSON,
   e-mail, URL, code tokens, then the code symbols left over); each match is cut out of the side
   and its weight is credited to its family, so nothing is counted twice (a URL inside an
   ``<a href>`` tag is markup, ``#include <stdio.h>`` is code).
2. Weights are characters that are not white space; a Han, kana or Hangul character counts two
   (it writes a syllable), so that a Chinese sentence mentioning a URL weighs as much as its
   English translation. A URL or an e-mail address weighs a fixed 12, about two words, whatever
   its length (with a short label before it, ``Website:``, counted as part of it): a sentence
   that mentions a long link in passing stays text, a side that is only links does not. Each
   HTML/XML tag adds 6 to its own characters, so ``<p>Hi</p>`` is markup while a sentence with
   one stray ``<b>`` is not; a line of nothing but brackets (``}``), a markup line (a heading, a
   table row) and an indented line of a multi-line side add 4.
3. The score is the covered weight over the side's whole weight (covered plus what is left), in
   [0, 1]. A side is dropped when the score reaches ``threshold`` and the covered weight is at
   least ``min_weight`` (``C++``, ``(1)`` and ``50%`` are not code); the reason is the family with
   the largest share: ``url``, ``email``, ``markup``, ``json`` or ``code``.

The patterns are ASCII-anchored (identifiers, tags and keywords are ASCII; ``<`` before a
Tifinagh or Arabic letter is not a tag), and measured to drop no line of the 204 Flores-200 dev
languages (``benchmarks/not_text_filter.py``).
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from bayling_data.config import StrictModel
from bayling_data.filters.base import SegmentFilter

Family = Literal["url", "email", "markup", "json", "code"]
FAMILIES: tuple[Family, ...] = ("url", "email", "markup", "json", "code")

# The weight of one URL or e-mail address (about two words), and what one tag adds to its own.
LINK_WEIGHT = 12
TAG_BONUS = 6
# One indented continuation line of a multi-line side (white space weighs nothing otherwise).
INDENT_WEIGHT = 4

_SPACE = r"[\s\p{Z}]"
_WIDE = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"


def _any(*patterns: str) -> str:
    return "|".join(f"(?:{pattern})" for pattern in patterns)


# --- whole lines of code (matched first: `#include <stdio.h>` is not a tag) ---------------------
_SHELL_TOOLS = (
    r"apt-get|apt|yum|dnf|brew|pip3?|npm|npx|yarn|pnpm|conda|git|docker|kubectl|cargo|go|gem|"
    r"systemctl|service"
)
_SHELL_SUBCOMMANDS = (
    r"install|uninstall|remove|update|upgrade|clone|commit|push|pull|checkout|add|run|build|"
    r"init|start|stop|exec|status|log|diff|merge|rebase|fetch|get|apply|delete|create|activate|"
    r"test|publish|list|show|search|config|compose|ps|images|tag|restart|reload|enable|disable"
)
_SHELL_COMMANDS = (
    r"curl|wget|ssh|scp|rsync|chmod|chown|mkdir|rmdir|cd|ls|rm|cp|mv|cat|grep|sed|awk|tar|"
    r"unzip|export|source|systemctl|python3?|node|make|cmake|gcc|g\+\+|javac|java|ruby|perl|"
    r"php|bash|sh|echo|touch|sudo|ln|find|kill|ping"
)
# An operand of an expression: a string, or a run of identifier and bracket characters.
_OPERAND = r"(?:\"[^\"\n]*\"|'[^'\n]*'|`[^`\n]*`|[\w$.()\[\]{}@#\\:/]+)+"
_OPERATOR = r"[ \t]*[-+*/%<>&|^,?:=!~]+[ \t]*"
# One argument that is not a word: `x.y`, `"a b"`, `n+1`, `[0]` (ASCII only).
_CODE_ARGUMENT = (
    r"\"[^\"\n]*\"|'[^'\n]*'|[\w$.:\[\]{}=+*/<>!&|-]*[$.:\[\]{}=+*/<>!&|-][\w$.:\[\]{}=+*/<>!&|-]*"
)
_EXPRESSION = (
    rf"(?:(?:new|await|yield|lambda|not)[ \t]+)?{_OPERAND}"
    rf"(?:{_OPERATOR}(?:(?:new|await|lambda|not)[ \t]+)?{_OPERAND})*"
)
_CODE_LINES = _any(
    r"(?m)^[ \t]*#[ \t]*(?:include|import|define|undef|ifn?def|endif|pragma)\b.*$",  # C, Obj-C
    r"(?m)^[ \t]*#!/.*$|(?m)^[ \t]*#.*-\*-.*$",  # shebang, `# -*- coding: utf-8 -*-`
    r"(?s)<\?php\b.*?(?:\?>|$)",
    # imports: Python, Java, Go, JavaScript
    r"(?m)^[ \t]*(?:from[ \t]+[\w.]+[ \t]+)?import[ \t]+[\w.*{}, \t]+(?:[ \t]+as[ \t]+\w+)?"
    r"(?:[ \t]+from[ \t]+['\"][^'\"\n]+['\"])?[ \t]*;?[ \t]*$",
    r"(?m)^[ \t]*(?:using[ \t]+namespace|package)[ \t]+[\w.:]+[ \t]*;?[ \t]*$",
    r"(?m)^[ \t]*template[ \t]*<[^\n]*>[ \t]*$",
    # shell: a prompt, a tool and its subcommand, or a command and an option or a path
    r"(?m)^[ \t]*(?:\$|>>>|[A-Z]:\\[^>\n]*>)[ \t]+\S.*$",
    r"(?m)^[ \t]*(?:sudo[ \t]+)?(?:"
    + _SHELL_TOOLS
    + r")[ \t]+(?:"
    + _SHELL_SUBCOMMANDS
    + r")\b.*$",
    r"(?m)^[ \t]*(?:sudo[ \t]+)?(?:"
    + _SHELL_COMMANDS
    + r")[ \t]+(?:-|[\w.~-]*[/=$*+]|\S+[ \t]+-|\S*['\"])\S*.*$",
    # SQL
    r"(?m)^[ \t]*(?:SELECT[ \t].*[ \t]FROM|INSERT[ \t]+INTO|UPDATE[ \t]+\w+[ \t]+SET|"
    r"DELETE[ \t]+FROM|(?:CREATE|DROP)[ \t]+(?:TABLE|INDEX|VIEW|DATABASE)|ALTER[ \t]+TABLE|"
    r"select[ \t]+(?:\*|[\w.]+(?:[ \t]*,[ \t]*[\w.]+)+)[ \t]+from)\b.*$",
    # Python block heads: `def f(x):`, `for i in range(3):`, `except ValueError as e:`, not
    # "for example:" (a head needs a bracket, `=`, `.` or `_`, or the shape `for x in y:`)
    r"(?m)^[ \t]*(?:async[ \t]+)?(?:def[ \t]+\w+[ \t]*\(|class[ \t]+\w+[ \t]*[(:]|"
    r"(?:if|elif|while|for|with)\b[^\n]*[()=\[\]_.]|"
    r"(?:if|elif|while)[ \t]+(?:not[ \t]+)?(?:True|False|None|\w+_\w*)\b|"
    r"for[ \t]+\w+(?:[ \t]*,[ \t]*\w+)*[ \t]+in\b)"
    r"[^\n]*:[ \t]*$",
    r"(?m)^[ \t]*(?:except(?:[ \t]+[A-Z][\w.]*(?:[ \t]+as[ \t]+\w+)?)?|else|try|finally)"
    r"[ \t]*:[ \t]*$",
    r"(?m)^[ \t]*(?:return|yield|assert|del|raise|throw|break|continue|pass)"
    r"(?:[ \t]+" + _EXPRESSION + r")?[ \t]*;?[ \t]*$",
    r"(?m)^[ \t]*(?:end(?:[ \t]*(?:if|while|for|function|sub|select|def|do|case))?|"
    r"endif|endwhile|endfor|fi|done|esac)[ \t]*;?[ \t]*$",
    r"(?m)^[ \t]*sudo[ \t]+\S.*$",
    r"(?m)^[ \t]*(?:\}[ \t]*)?(?:if|for|while|switch|foreach|elseif|else[ \t]+if)[ \t]*\(.*$",
    r"(?m)^[ \t]*export[ \t]+(?:default|const|function|class|let|var|async|\{)\b.*$",
    # CSS: `ul li { list-style: none; }`, `width: 100%;`
    r"(?m)^[ \t]*[^{}\n]*\{[ \t]*(?:[a-z-]+[ \t]*:[^;{}\n]+;?[ \t]*)+\}[ \t]*$",
    r"(?m)^[ \t]*[a-z-]+[ \t]*:[ \t]*[^;{}\n]+;[ \t]*$",
    r"(?m)^[ \t]*(?:case[ \t][^\n]*|default[ \t]*):[ \t]*$",  # `case 'add':`
    r"(?m)^[ \t]*@[A-Za-z_][\w.]*(?:\([^\n]*\))?[ \t]*$",  # `@Override`, `@app.route("/")`
    r"(?m)^[ \t]*(?:puts|print|echo|say|printf)[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\$\w+)"
    r"[ \t]*;?[ \t]*$",  # `puts "hello"`
    r"(?m)^[ \t]*(?:raise|throw)[ \t]+(?:new[ \t]+)?[A-Z]\w*(?:Error|Exception)\b.*$",
    # an assignment whose right side is an expression, not words: `x = 1`, `a[i] += b * c;`
    r"(?m)^[ \t]*(?:[A-Za-z_][\w:]*(?:<[^<>\n]*>)?(?:\[\])*[*&]?[ \t]+){0,3}"
    r"(?:[*&]*[A-Za-z_$][\w$]*|\[[^\]\n]*\]|\{[^}\n]*\})"
    r"(?:(?:\.|->|::)[A-Za-z_$][\w$]*|\[[^\]\n]*\])*[ \t]*(?:[-+*/%|&^]|\*\*|//|<<|>>)?="
    r"[ \t]*" + _EXPRESSION + r"[ \t]*[;,]?[ \t]*(?:(?://|#)[^\n]*)?$",
    # a call statement: `print("Hello")`, `console.log(x);`, `main()`
    # (a lower-case name, or a dotted one: not "Paris(France) is big (very)")
    r"(?m)^[ \t]*(?:(?:await|return|yield)[ \t]+)?(?:[a-z_$][\w$]*|[A-Za-z_$][\w$]*"
    r"(?:(?:\.|::|->)[A-Za-z_$][\w$]*)+)\([^\n]*\)[ \t]*;?[ \t]*$",
    # a declaration or block head ending in a brace, a line opening with one: `} else {`
    r"(?m)^[^\n{}]*\S[ \t]*\{[ \t]*$|(?m)^[ \t]*\}[^\n]*$",
    r"(?m)^[ \t]*(?:[\w:<>*&\[\]]+[ \t]+)+[\w:~]+\([^()\n]*\)[ \t]*(?:const[ \t]*)?;[ \t]*$",
)
# A line of nothing but brackets and separators (`}`, `});`, `]`): weighs more than its
# characters.
_BRACKET_LINES = r"(?m)^[ \t]*[;,.]*[{}()\[\]][{}()\[\];,. \t]*$"

# --- markup ---------------------------------------------------------------------------------
_TAGS = _any(
    r"(?s)<!--.*?-->",
    r"(?s)<!\[CDATA\[.*?\]\]>",
    r"<![A-Za-z][^<>]*>",  # <!DOCTYPE html>
    r"(?s)<\?[A-Za-z].*?\?>",  # <?xml ...?>
    r"</?[A-Za-z][\w:.-]*(?:\s+[^<>]*?)?\s*/?>",  # <p>, </div>, <img src="x" />
    r"\[/?(?:b|i|u|s|url|img|quote|code|color|size|list|center)(?:=[^\]\n]*)?\]",  # BBCode
    r"\{%.*?%\}|<%.*?%>|\{\{[^{}\n]*\}\}",  # templates: {% for x in y %}, <%= x %>, {{ x }}
)
_MARKUP_LINES = _any(
    r"(?m)^[ \t]*={2,}[^=\n]+={2,}[ \t]*$",  # == Heading ==
    r"(?m)^[ \t]*#{1,6}[ \t]+\S.*$",  # ## Markdown heading
    r"(?m)^[ \t]*\|.*\|[ \t]*$",  # | table | row |
    r"(?m)^[ \t]*(?:\{\||\|\}|\|[-+]).*$",  # wiki tables: {| class="x", |-, |}
    r"(?m)^[ \t]*[|!][^\n]*(?:\|\||!!).*$",  # | 2019 || Best Actor || Won
    r"(?m)^[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$",  # ---|---
    r"(?m)^[ \t]*```[\w+-]*[ \t]*$",
    r"(?m)^[ \t]*[-*+][ \t]+\[[ xX]\][ \t]",  # - [x] task
)
_MARKUP = _any(
    r"&(?:[A-Za-z][A-Za-z0-9]{1,7}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});",  # &amp; &#160;
    r"\[\[[^\[\]\n]*\]\]",  # [[wiki link]]
    r"'{2,5}",  # ''italic'', '''bold'''
    r"\*\*[^*\n]+\*\*|__[^_\n]+__",  # **bold**
    r"!?\[[^\[\]\n]*\]\([^()\s]*\)",  # [text](link), ![alt](src)
    r"```",
)

# --- JSON -----------------------------------------------------------------------------------
_JSON_STRING = r'"(?:[^"\\\n]|\\.)*"'
_JSON_SCALAR = _any(_JSON_STRING, r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", r"true", r"false", r"null")
_JSON = _any(
    r'"[\w$@.-]{1,64}"[ \t]*:[ \t]*(?:' + _JSON_SCALAR + r"|[\[{])",  # "key": value
    # [1, 2, "x"]: two items at least (a lone `[1]` is a footnote mark)
    r"(?m)^[ \t]*\[[ \t]*(?:"
    + _JSON_SCALAR
    + r")(?:[ \t]*,[ \t]*(?:"
    + _JSON_SCALAR
    + r"))+[ \t]*\][ \t]*,?[ \t]*$",
)

# --- addresses ------------------------------------------------------------------------------
# A short label before a link belongs to it: `Website: www.example.com`, `E-mail: a@b.org`.
_LABEL = r"(?m:^[ \t]*[^\s:：]+(?:[ \t]+[^\s:：]+){0,2}[ \t]*[:：][ \t]*)?"
_EMAIL = _LABEL + r"(?:mailto:)?[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_TLDS = (
    r"com|org|net|edu|gov|mil|int|info|biz|io|dev|app|ai|xyz|online|site|tech|html?|php|aspx?|"
    r"co\.uk|org\.uk|ac\.uk|gov\.uk|co\.jp|com\.au|com\.br|com\.cn|uk|de|fr|ru|cn|jp|kr|nl|eu|"
    r"ly|tv|ca|au|br|ch|pl|cz|ua|tk|gr|ir|vn|tw|hk|mx|ar|za|ng|ke"
)
_URL = (
    _LABEL
    + "(?:"
    + _any(
        r"(?i)\b(?:https?|ftps?|sftp|file|wss?)://" + _URL_CHARS + r"+",
        r"(?i)\bwww\d{0,3}\." + _URL_CHARS + r"+",
        # a bare domain, lower case: example.com, news.bbc.co.uk/sport
        r"\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.(?:"
        + _TLDS
        + r")\b(?:/"
        + _URL_CHARS
        + r"*)?",
    )
    + ")"
)

# --- code tokens ----------------------------------------------------------------------------
_CSS_PROPERTIES = (
    r"color|background(?:-[a-z]+)?|margin(?:-[a-z]+)?|padding(?:-[a-z]+)?|font(?:-[a-z]+)?|"
    r"width|height|display|position|border(?:-[a-z]+)*|text-[a-z]+|line-height|float|top|left|"
    r"right|bottom|z-index|overflow|opacity|cursor|content|flex(?:-[a-z]+)?|align-[a-z]+|"
    r"justify-content|(?:max|min)-(?:width|height)|transition|transform|box-shadow|gap"
)
# Keywords that are not also English words ("return to sender" and "print the page" are text).
_LEADING_KEYWORDS = (
    r"elif|endif|fi|esac|var|const|void|boolean|unsigned|namespace|nonlocal|lambda|println|"
    r"printf|console|def|impl|fn|func|function|typedef|struct|enum|elsif|elseif"
)
_CODE_TOKENS = _any(
    r"\b(?:def|fn|func|function|sub|proc)[ \t]+[A-Za-z_$][\w$]*[ \t]*\(",  # definition heads
    r"\bfunction[ \t]*\(",
    r"\b(?:class|struct|interface|enum|trait|impl)[ \t]+[A-Z_]\w*"
    r"(?:[ \t]*[:({<]|[ \t]+(?:extends|implements)\b)",
    r"(?m)(?:^|[;{}])[ \t]*(?:" + _LEADING_KEYWORDS + r")\b",
    r"(?m)(?:^|\s)//.*$|(?m)^[ \t]*(?:--|;;)[ \t].*$",  # line comments
    r"(?m)(?:^|[ \t])#[ \t].*$",  # `x = 1  # note`
    r"(?s)/\*.*?\*/",  # block comments
    r"[(=\[][ \t]*(?:\"[^\"\n]*\"|'[^'\n]*')[ \t]*[),;\]}]",  # string arguments
    r",[ \t]*(?:\"[^\"\n]*\"|'[^'\n]*')[ \t]*[)\]}]",
    # calls: `f()`, `f(a, "b")`, `f(x.y)` whole (not "essaawa(obuwanvu)" nor "word( more
    # words, ...)", a missing space in text), and the head of a dotted or snake_case call:
    # `a.b.c(`, `read_csv(`
    r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)*\([ \t]*(?:"
    + _OPERAND
    + r"(?:[ \t]*,[ \t]*"
    + _OPERAND
    + r")+|"
    + _CODE_ARGUMENT
    + r")?[ \t]*\)",
    r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)+\(|\b[a-z_$][\w$]*_[\w$]*\(",
    # member access: `os.path.join`, `self.x` (not `end.next`, a missing space in text)
    r"\b[a-z_]\w*(?:\.[a-z_]\w*){2,}\b",
    r"\b(?:self|this|cls|np|pd|os|sys|document|window|console|torch|nn|tf|plt|app|req|res)"
    r"\.[A-Za-z_]\w*",
    r"\b[A-Za-z][a-z0-9]*(?:_[A-Za-z0-9]+)+\b",  # snake_case
    r"\b[a-z]+[A-Z][a-z0-9]*[A-Z]\w*\b",  # camelCaseWith humps (not iPhone, eBay)
    r"\b[A-Z]\w*(?:Error|Exception)\b",
    # operators (`<<` and `>>` are guillemets by now, see _QUOTE_MARKS)
    r"===|!==|==|!=|<=|>=|=>|->|::|&&|\|\||\+\+|\+=|-=|\*=|/=|%=|:=|\*\*|\?\?|"
    r"\x{AB}\x{AB}|\x{BB}\x{BB}",
    r"\(\)|\[\]|\{\}|\);|;[ \t]*$|\)[ \t]*:[ \t]*$|\w\[[\w\"'$.+-]*\]",
    r"\b[A-Z]:\\[^\s]*",  # C:\Windows\path
    r"(?:^|[\s=(\"'])(?:~|\.{1,2})?/(?:[\w.-]+/)*[\w.-]+",  # /usr/local/bin, ./run.sh
    r"(?:^|\s)(?:--[a-z][\w-]*|-[a-zA-Z]{1,3}\b)",  # --force, -m, -la (not Finnish -osa)
    r"(?:^|[\s{;])(?:" + _CSS_PROPERTIES + r")[ \t]*:[ \t]*[^;{}\n]+;?",
    r"[.#]?[A-Za-z][\w-]*(?:[ \t]*[,>][ \t]*[.#]?[A-Za-z][\w-]*)*[ \t]*\{",  # css selector {
)
_CODE_SYMBOLS = r"[{}\[\]()<>=;|&+*/\\^~$%#@`]"

# (family, pattern, weight per match, whether the matched characters count too)
_LINE_STAGES: tuple[tuple[Family, str, int, bool], ...] = (
    ("code", _BRACKET_LINES, INDENT_WEIGHT, True),
    ("code", _CODE_LINES, 0, True),
)
# After the lines of code, `<<` and `>>` used as quotation marks (`<<Hello>>`, `>>so<<`) become
# guillemets, of the same weight, so that `<<Hello>>` is no tag.
_QUOTE_MARKS = (("<<", "\u00ab\u00ab"), (">>", "\u00bb\u00bb"))
_STAGES: tuple[tuple[Family, str, int, bool], ...] = (
    ("markup", _TAGS, TAG_BONUS, True),
    ("markup", _MARKUP_LINES, INDENT_WEIGHT, True),
    ("markup", _MARKUP, 0, True),
    ("json", _JSON, 0, True),
    ("email", _EMAIL, LINK_WEIGHT, False),
    ("url", _URL, LINK_WEIGHT, False),
    ("code", _CODE_TOKENS, 0, True),
    ("code", _CODE_SYMBOLS, 0, True),
)
_INDENT = r"\n(?:\t| {2,})"


def _weight(texts: pa.Array) -> pa.Array:
    """Characters that are not white space, a Han, kana or Hangul character counting two."""
    length = pc.utf8_length(texts)
    spaces = pc.count_substring_regex(texts, _SPACE)
    wide = pc.count_substring_regex(texts, _WIDE)
    return pc.cast(pc.add(pc.subtract(length, spaces), wide), pa.float64())


def _add_where(values: pa.Array, mask: pa.Array, extra: pa.Array) -> pa.Array:
    """``values`` with ``extra`` (one value per true position of ``mask``) added there."""
    return pc.replace_with_mask(values, mask, pc.add(values.filter(mask), extra))


def not_text_scores(texts: pa.Array, families: tuple[Family, ...] = FAMILIES) -> pa.StructArray:
    """Per side: the share of its weight covered by each family (``url`` … ``code``), their sum
    (``score``, in [0, 1]) and the covered weight itself (``covered``).

    Each stage counts its matches over the whole column; only the sides it matches are rewritten
    (the match cut out) and re-weighed, so a clean column costs one regex scan a stage.
    """
    texts = pc.cast(texts, pa.string())
    weight = _weight(texts)
    zero = pc.multiply(pc.fill_null(weight, 0.0), 0.0)
    covered = dict.fromkeys(FAMILIES, zero)
    removed = zero  # characters cut out, which the natural rest no longer weighs
    if "code" in families:
        indents = pc.fill_null(pc.count_substring_regex(texts, _INDENT), 0)
        covered["code"] = pc.cast(pc.multiply(indents, INDENT_WEIGHT), pa.float64())
    for index, (family, pattern, per_match, count_chars) in enumerate(_LINE_STAGES + _STAGES):
        if index == len(_LINE_STAGES):
            for quote, guillemets in _QUOTE_MARKS:
                texts = pc.replace_substring(texts, quote, guillemets)
        if family not in families:
            continue
        matches = pc.count_substring_regex(texts, pattern)
        hit = pc.fill_null(pc.greater(matches, 0), False)
        if not pc.any(hit).as_py():
            continue
        before = texts.filter(hit)
        after = pc.replace_substring_regex(before, pattern, " ")
        chars = pc.subtract(_weight(before), _weight(after))
        gained = pc.cast(pc.multiply(matches.filter(hit), per_match), pa.float64())
        if count_chars:
            gained = pc.add(gained, chars)
        covered[family] = _add_where(covered[family], hit, gained)
        removed = _add_where(removed, hit, chars)
        texts = pc.replace_with_mask(texts, hit, after)
    total_covered = zero
    for family in FAMILIES:
        total_covered = pc.add(total_covered, covered[family])
    rest = pc.subtract(pc.fill_null(weight, 0.0), removed)
    total = pc.max_element_wise(pc.add(total_covered, rest), 1.0)
    fields = [pc.divide(covered[family], total) for family in FAMILIES]
    fields += [pc.divide(total_covered, total), total_covered]
    return pa.StructArray.from_arrays(fields, names=[*FAMILIES, "score", "covered"])


class NotTextConfig(StrictModel):
    """Drop segment sides that are mostly URLs, e-mail addresses, markup, JSON or code."""

    type: Literal["not_text"]
    threshold: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Drop a side whose covered share of weight reaches this.",
    )
    min_weight: float = Field(
        default=3.0,
        ge=0.0,
        description="Least covered weight (characters) a dropped side must have.",
    )
    catch: list[Family] = Field(
        default_factory=lambda: list(FAMILIES),
        min_length=1,
        description="The families looked for: url, email, markup, json, code.",
    )


class NotTextFilter(SegmentFilter):
    """Drops sides whose score (the share of their weight that is URL, e-mail, markup, JSON or
    code) reaches ``threshold``; the reason is the family that covers most."""

    name = "not_text"

    def __init__(
        self,
        threshold: float = 0.5,
        min_weight: float = 3.0,
        catch: tuple[Family, ...] | list[Family] = FAMILIES,
    ):
        super().__init__()
        unknown = sorted(set(catch) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; expected some of {list(FAMILIES)}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        self.threshold, self.min_weight = threshold, min_weight
        self.catch = tuple(family for family in FAMILIES if family in catch)

    def score(self, texts: pa.Array, lang: str) -> pa.Array:
        return not_text_scores(texts, self.catch)

    def accept(self, scores: pa.Array, lang: str) -> pa.Array:
        return pc.is_null(self.reject_reasons(scores, lang))

    def reject_reasons(self, scores: pa.Array, lang: str) -> pa.Array:
        drop = pc.and_(
            pc.greater_equal(pc.struct_field(scores, "score"), self.threshold),
            pc.greater_equal(pc.struct_field(scores, "covered"), self.min_weight),
        )
        # The family with the largest share; ties go to the earlier one in FAMILIES.
        best = pc.struct_field(scores, self.catch[-1])
        reason = pa.array([self.catch[-1]] * len(scores), pa.string())
        for family in reversed(self.catch[:-1]):
            share = pc.struct_field(scores, family)
            wins = pc.greater_equal(share, best)
            reason = pc.if_else(wins, pa.scalar(family), reason)
            best = pc.max_element_wise(share, best)
        return pc.if_else(pc.fill_null(drop, False), reason, pa.scalar(None, pa.string()))

    @classmethod
    def from_config(cls, config: NotTextConfig) -> NotTextFilter:
        return cls(config.threshold, config.min_weight, config.catch)
