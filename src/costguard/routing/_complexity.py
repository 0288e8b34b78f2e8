"""A local, model-free guess at how hard a request is, and the router that acts on it.

:func:`score_complexity` reads a prompt's surface: its length; code (fences, identifiers,
code punctuation and keywords, stack traces); maths (arithmetic, LaTeX, words such as
"prove" and "integral"); reasoning cues ("step by step", "compare", "why", "design",
"trade-offs", "plan", ...); constraints ("must", "at least", "exactly", output formats, a
JSON schema); the conversation's depth; and the output asked for (``max_tokens``,
"detailed", "essay", "1000 words"). A few cues of small tasks ("translate", "one word",
"yes or no", "briefly", ...) count against. No network, no model: a handful of compiled
regular expressions, well under a millisecond for ordinary prompts.

The score is ``logistic(sum of weighted features - bias)``, in (0, 1). Each hard feature
counts matches through a saturating curve ``c / (c + k)`` and only ever adds, so adding hard
cues to a prompt never lowers its score (the easy cues, which subtract, are counted
separately); see ``tests/test_routing.py``. A prompt longer than ``2 * _WINDOW`` characters
is read at its beginning and its end only (the instruction is usually at one of them), which
keeps the cost bounded; its length still counts in full.

The weights were set by hand against ``benchmarks/data/complexity_prompts.jsonl`` (run
``scripts/eval_complexity.py``); ``docs/routing.md`` has the table and its caveats.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from .._call import Call
from .._errors import ConfigurationError

__all__ = ["DEFAULT_THRESHOLD", "ComplexityRouter", "prompt_text", "score_complexity"]

#: The threshold ``docs/routing.md`` justifies: the best agreement with the labelled set.
DEFAULT_THRESHOLD: Final = 0.5

#: Characters read from each end of a long prompt.
_WINDOW: Final = 6000
#: Characters of the first and last paragraphs read for instruction cues.
_FIRST: Final = 1000

_F = re.IGNORECASE

# -- hard cues ------------------------------------------------------------------------------

_FENCE = re.compile(r"```")
_TRACE = re.compile(
    r"traceback \(most recent call last\)|^\s*at [\w$.<>]+\([^)\n]*\)|file \"[^\"\n]+\", line \d+"
    r"|\b\w+(?:error|exception):|\bsegmentation fault|\bpanic:|\bstack ?trace|\bcore dumped"
    r"|\boomkilled\b|\bexit code \d+",
    _F | re.MULTILINE,
)
_CODE = re.compile(
    r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b"  # snake_case
    r"|\b[a-z]+(?:[A-Z][a-z0-9]+)+\b"  # camelCase
    r"|\b\w+\.\w+\("  # obj.method(
    r"|[{};]|=>|->|::|==|!=|&&|\|\||\+=|</?\w+>"
    r"|\b(?:def|fn|func|function)\s+\w+|\bclass\s+\w+\s*[:({]|\breturn\b|\bimport\s+\w"
    r"|\b(?:const|let|var)\s+\w+\s*=|\bselect\b[^.\n]{1,80}\bfrom\b|\b(?:async|await)\b"
)
_EXPERT = re.compile(  # technical and professional vocabulary
    r"\b(?:api|sql|database|schema|index(?:es)?|thread(?:s|-safe)?|concurren\w*|deadlock"
    r"|race condition|latency|throughput|p99|kubernetes|docker|terraform|kafka|postgres\w*"
    r"|redis|cache|queue|regex|parser|compiler|algorithm|o\(\s*[n1]|big-o|recursion"
    r"|distributed|consisten\w*|idempoten\w*|encryption|authenticat\w*|oauth|saml|sso"
    r"|microservices?|monolith|memory|garbage collect\w*|jvm|ast|unit tests?|decorators?"
    r"|coroutines?|generics?|closures?|backoff|retr(?:y|ies)|jitter|http|tcp|dns|tls"
    r"|websockets?|lock-free|mutex|legal|contract|clauses?|complian\w*|regulat\w*|gdpr"
    r"|enforceab\w*|liabilit\w*|ifrs|gaap|revenue recognition|hedg\w*|derivatives"
    r"|dosages?|interactions?|clinical|diagnos\w*|statistic\w*|hypothes[ie]s)\b",
    _F,
)
_MATHS = re.compile(
    r"\\(?:frac|sum|int|sqrt|lim|prod|infty|partial|cdot|mathbb|binom|alpha|beta|theta|pi)\b"
    r"|\$[^$\n]{1,200}\$|[∑∫√∞∂≤≥≠±]"
    r"|\b(?:prove|proof|theorem|lemma|integral|integrate|derivative|differentiate|derive"
    r"|induction|eigen\w*|matri(?:x|ces)|converge\w*|diverge\w*|probability|expected (?:value"
    r"|number)|variance|polynomial|irrational|modulo|combinatori\w*|recurrence|bayes\w*"
    r"|permutations?|regression|lagrange|least[- ]squares|significan(?:t|ce)|optimal"
    r"|asymptotic\w*|infinitely many|if and only if|iff|series|equation|inequality|solve"
    r"|closed form|(?:in )?how many ways|nth|real solutions?|geometric\w*)\b",
    _F,
)
_ARITH = re.compile(r"\d\s*[-+*/^=<>]\s*\(?\d|\b[a-z]\s*\^\s*\d|\b\d+[a-z]\b|[a-z]\([a-z]\)", _F)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_REASON = re.compile(
    r"step[- ]by[- ]step|\bcompar\w*|\bversus\b|\bvs\.?(?=\s)|\bwhy\b|\bhow (?:would|should"
    r"|does|do|can|could)\b|\bdesign\w*|\barchitect\w*|\banaly[sz]\w*|\btrade[- ]?offs?\b"
    r"|pros and cons|\bplan(?:s|ning)?\b|\bstrateg\w*|\bevaluat\w*|\bassess\w*|\bjustif\w*"
    r"|\breason\w*|\bexplain\w*|\bimplications?\b|\bconsequences?\b|\broot cause|\bdiagnos\w*"
    r"|\bdebug\w*|\binvestigat\w*|\brecommend\w*|\bcritique|\bwhat if\b|\boptimi[sz]\w*"
    r"|\brefactor\w*|\bimplement\w*|\bprioriti[sz]\w*|\bweigh\w*|\brisks?\b|\bedge cases?"
    r"|\bscal(?:e|able|ability|ing)\b|\bmigrat\w*|\bnuanced?\b|\bhypothes[ie]s\b|\bestimat\w*"
    r"|\bwhat would happen\b|\bsecond-order\b|\bthreat model|\breconcile|\bpropose\b"
    r"|\bwhere .{0,40} went wrong|\bfor and against\b|\bwhat else\b|\binfer\w*|\bgenerali[sz]e"
    r"|\bshould (?:we|i|a|an|our|the|my)\b|\bconsider\w*|\bwalk (?:me )?through\b"
    r"|\bwhat would you\b|\bwhich (?:approach|option)\b",
    _F,
)
_CONSTRAINT = re.compile(
    r"\bmust\b|\bat (?:least|most)\b|\bexactly\b|\bno (?:more|fewer|less|longer) than\b"
    r"|\b(?:under|within|below) \d+|\bdo(?:n't| not)\b|\bwithout\b|\bonly use\b|\bensur\w*"
    r"|\bmake sure\b|\brequir\w*|\bconstraints?\b|\bjson\b|\bschema\b|\byaml\b|\bcsv\b"
    r"|\btable\b|\bbullet\w*|\bmarkdown\b|\bformat\w*|\bkeep (?:it|the|same)\b|\bpreserv\w*"
    r"|\bstrict\w*|\bhandl(?:e|ing)\b|\binclud(?:e|ing)\b|\bcover(?:ing)?\b|\bflag\b"
    r"|\beach\b|\bevery\b|\ball\b|\bnormali[sz]\w*|\bdeduplicat\w*",
    _F,
)
_OUTPUT = re.compile(
    r"\bdetailed\b|\bin (?:detail|depth)\b|\bin-depth\b|\bcomprehensive\b|\bthorough\w*"
    r"|\bessays?\b|\breports?\b|\barticles?\b|\bop-ed\b|\bstory\b|\bchapter\b|\bproposal\b"
    r"|\bspeech\b|\beulogy\b|\bguide\b|\bdocument\b|\bpolicy\b|\bwhite ?paper\b"
    r"|\b\d{3,5}[ -]?words?\b|\b\d+ pages?\b|\blong-form\b|\bwith (?:unit )?tests\b"
    r"|\bminutes long\b|\bfull (?:implementation|report|plan)\b|\bworked examples?\b"
    r"|\bsonnet\b|\bvillanelle\b|\bsestina\b|\bnovel\b|\bscreenplay\b|\bmetre\b|\biambic\b",
    _F,
)

# -- easy cues (subtract) ---------------------------------------------------------------------

_EASY = re.compile(
    r"\btranslat\w*|\bone[- ](?:word|sentence|line)\b|\bsingle word\b|\byes or no\b"
    r"|\btrue or false\b|\bbriefly\b|\bkeep it short\b|\bshort answer\b|\bin a word\b"
    r"|\bsynonyms?\b|\bantonyms?\b|\brhymes?\b|\bspell\w*|\bcapital of\b|\bwho (?:wrote|painted"
    r"|is)\b|\bwhat year\b|\bdefine\b|\bdefinition of\b|\btypo\b|\bfix the grammar\b"
    r"|\bsentiment\b|\bpositive or negative\b|\btl;?dr\b|\bhow (?:do|can) i\b|\bwhat does\b"
    r"|\bwhat(?:'s| is) (?:the|a|\d)\b|\bconvert \d|\bround\b|\bhow many \w+ (?:are )?in\b"
    r"|\bis (?:this|the|it)\b|\bwhich (?:is|one|language|planet)\b|\bsubject line\b|\bhaiku\b"
    r"|\btweet\b|\bone of:|\boptions:|\bwrite a (?:short|one|two)\b|\bshorten\b|\brewrite in\b"
    r"|\bcapitali[sz]e\b|\bextract the\b|\bpull (?:out )?the\b|\bget the\b"
    r"|\bsummari[sz]e (?:this|the|in)\b|\bin (?:one|two|three|a few) sentences\b"
    r"|\baccording to (?:this|the)\b|\bin this (?:email|message|text|paragraph|receipt|note)\b"
    r"|\bfrom (?:this|the) (?:text|email|message|paragraph|list)\b|\bonly\.|\bwhich department\b"
    r"|\b(?:reply|respond) to this \w+ (?:to|and) (?:say|tell)\b",
    _F,
)

# -- weights ----------------------------------------------------------------------------------

# (pattern, weight, saturation k): a feature adds weight * c / (c + k) for c matches.
_HARD: Final[tuple[tuple[re.Pattern[str], float, float], ...]] = (
    (_FENCE, 1.0, 1.0),
    (_TRACE, 1.0, 1.0),
    (_CODE, 0.5, 3.0),
    (_EXPERT, 0.8, 1.5),
    (_MATHS, 3.0, 0.8),
    (_ARITH, 0.3, 2.0),
    (_NUMBER, 0.5, 6.0),
    (_REASON, 3.0, 1.2),
    (_CONSTRAINT, 1.5, 2.5),
    (_OUTPUT, 1.5, 1.0),
)
_EASY_WEIGHT: Final = 2.8
_EASY_K: Final = 1.0
_LENGTH_WEIGHT: Final = 0.6  # per doubling of the prompt beyond 60 characters
_LENGTH_CAP: Final = 4.0
_WEIGHTS: Final = (_LENGTH_WEIGHT, *(w for _, w, _ in _HARD), -_EASY_WEIGHT)
_TURNS_WEIGHT: Final = 0.9  # earlier user turns: c / (c + 3)
_MAX_TOKENS_WEIGHT: Final = 0.35  # per doubling of max_tokens beyond 2048
_MAX_TOKENS_CAP: Final = 1.0
_STRUCTURED_WEIGHT: Final = 0.6  # a JSON schema response format or tools
_BIAS: Final = 1.35


def _saturated(count: float, k: float) -> float:
    return count / (count + k)


def _logistic(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _features(prompt: str) -> tuple[float, ...]:
    """The prompt's features, each in [0, 1] except length: the score is their weighted sum."""
    length = len(prompt)
    text = prompt if length <= 2 * _WINDOW else f"{prompt[:_WINDOW]}\n{prompt[-_WINDOW:]}"
    cut = text.find("\n\n")
    first = (text if cut < 0 else text[:cut])[:_FIRST]
    last = None if cut < 0 else text[text.rfind("\n\n") + 2 :][-_FIRST:]
    values = [min(math.log2(1.0 + length / 60.0), _LENGTH_CAP)]
    for pattern, _weight, k in _HARD:
        count = len(pattern.findall(text))
        if count:
            count += len(pattern.findall(first))
        values.append(_saturated(count, k))
    easy = len(_EASY.findall(first))
    if last is not None:
        easy += len(_EASY.findall(last))
    values.append(_saturated(easy, _EASY_K))
    return tuple(values)


def score_complexity(
    prompt: str,
    *,
    turns: int = 1,
    max_tokens: int | None = None,
    structured: bool = False,
) -> float:
    """How hard ``prompt`` looks, from 0 (trivial) to 1 (needs the strong model).

    :param prompt: the request's text (for a chat, its latest user turn).
    :param turns: user turns in the conversation so far, this one included.
    :param max_tokens: the output limit asked for, if any.
    :param structured: the answer must follow a JSON schema, or may call tools.

    Deterministic, local and pure: the same arguments always give the same float, rounded to
    four decimals.
    """
    raw = sum(w * v for w, v in zip(_WEIGHTS, _features(prompt), strict=True))
    if turns > 1:
        raw += _TURNS_WEIGHT * _saturated(turns - 1, 3.0)
    if max_tokens is not None and max_tokens > 2048:
        raw += min(_MAX_TOKENS_WEIGHT * math.log2(max_tokens / 2048), _MAX_TOKENS_CAP)
    if structured:
        raw += _STRUCTURED_WEIGHT
    return round(_logistic(raw - _BIAS), 4)


# -- reading a call ---------------------------------------------------------------------------


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _texts(content: Any) -> Iterable[str]:
    """The text parts of one message's content (images, files and tool calls skipped)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, Sequence) and not isinstance(content, bytes):
        for part in content:
            if isinstance(part, str):
                yield part
                continue
            text = _field(part, "text")
            if isinstance(text, str):
                yield text
            elif _field(part, "type") == "tool_result":
                yield from _texts(_field(part, "content"))


def prompt_text(call: Call) -> tuple[str, int]:
    """The latest user turn's text and the number of user turns, for :func:`score_complexity`.

    Reads ``messages`` (Chat Completions, Anthropic) or ``input`` (Responses: a string, or a
    list of items); a list without any user turn is read whole.
    """
    name = call.operation.messages_param or "input"
    value = call.params.get(name)
    if isinstance(value, str):
        return value, 1
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        return "", 1
    users = [item for item in value if _field(item, "role") == "user"]
    if not users:
        return "\n".join(t for item in value for t in _texts(_field(item, "content"))), 1
    return "\n".join(_texts(_field(users[-1], "content"))), len(users)


def _structured(call: Call) -> bool:
    params = call.params
    tools = params.get("tools")
    if isinstance(tools, Sequence) and not isinstance(tools, str) and tools:
        return True
    for name in ("response_format", "text", "output_format"):  # chat, responses, anthropic
        value = params.get(name)
        if isinstance(value, Mapping):
            kind = value.get("type")
            inner = value.get("format")
            if kind == "json_schema" or (isinstance(inner, Mapping) and inner.get("type")):
                return True
        elif isinstance(value, type):  # .parse(response_format=SomeModel)
            return True
    return False


def _name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"ComplexityRouter {field} must be a model name, got {value!r}")
    return value


class ComplexityRouter:
    """Sends easy requests to ``cheap`` and hard ones to ``strong``, by
    :func:`score_complexity`: ``cheap`` below ``threshold``, ``strong`` at or above it.

    ``cheap`` and ``strong`` must be models of one provider; the router applies to calls
    through that provider's clients only. Bad values raise
    :class:`~costguard.ConfigurationError` (models are checked against the price table when
    the :class:`~costguard.routing.Router` is given to a ``RouteLayer``).
    """

    __slots__ = ("cheap", "strong", "threshold")

    def __init__(self, cheap: str, strong: str, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.cheap = _name(cheap, "cheap")
        self.strong = _name(strong, "strong")
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0  # also refuses NaN
        ):
            raise ConfigurationError(
                f"ComplexityRouter threshold must be a number in [0, 1], got {threshold!r}"
            )
        self.threshold = float(threshold)

    def __repr__(self) -> str:
        return (
            f"ComplexityRouter(cheap={self.cheap!r}, strong={self.strong!r}, "
            f"threshold={self.threshold!r})"
        )

    def score(self, call: Call) -> float:
        """:func:`score_complexity` of the call's latest user turn, depth, limit and format."""
        text, turns = prompt_text(call)
        return score_complexity(
            text, turns=turns, max_tokens=call.max_tokens, structured=_structured(call)
        )

    def choose(self, call: Call) -> tuple[str, float]:
        """The model for ``call`` and the score that chose it."""
        score = self.score(call)
        return (self.cheap if score < self.threshold else self.strong), score
