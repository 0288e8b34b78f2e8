"""A local, model-free guess at how hard a request is, and the router that acts on it.

:func:`score_complexity` reads a prompt's surface: its length; code (fences, code
punctuation and keywords, snake_case identifiers, stack traces); maths (arithmetic, LaTeX,
words such as "prove" and "integral"); technical and professional vocabulary; reasoning cues
("step by step", "compare", "why", "design", "trade-offs", "plan", ...); constraints ("must",
"at least", "exactly", output formats, a JSON schema); the conversation's depth; and the
output asked for (``max_tokens``, "detailed", "essay", "1000 words"). A few cues of small
tasks ("translate", "one word", "yes or no", "summarise this", ...) count against, read in
the first and last paragraphs only, where instructions are. No network, no model, no large
regular expressions: the text is lowered, split into words once, and cues are counted with
set intersections and ``str.count``: tens of microseconds for a short prompt, at most a few
hundred for a long one (``benchmarks/routing.py``).

The score is ``logistic(sum of weighted features - bias)``, in [0, 1]. Each hard feature
counts its cues in the whole prompt, and once more in its first paragraph (where the
instruction usually is), through a saturating curve ``c / (c + k)``, and only ever adds. So
appending a paragraph of hard cues to a prompt never lowers its score (the easy cues, which
subtract, are read in the first and last paragraphs, and a new last paragraph without easy
cues only removes some); ``tests/test_routing.py`` checks this. A prompt longer than
``2 * _WINDOW`` characters is read at its beginning and its end only, which bounds the cost;
its length still counts in full.

The weights were set by hand against the "tune" split of
``benchmarks/data/complexity_prompts.jsonl`` and the bias once against its "holdout" split
(``scripts/eval_complexity.py``); ``docs/routing.md`` has the tables and their caveats.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .._call import Call
from .._errors import ConfigurationError

__all__ = ["DEFAULT_THRESHOLD", "ComplexityRouter", "prompt_text", "score_complexity"]

#: The default threshold: where agreement with the held-out labels peaks (docs/routing.md).
DEFAULT_THRESHOLD: Final = 0.5

#: Characters read from each end of a long prompt.
_WINDOW: Final = 1500
#: Characters of the first paragraph read again for hard cues.
_FIRST: Final = 600
#: Characters of the first and last paragraphs read for easy cues.
_EDGE: Final = 400

#: Punctuation that separates words (apostrophes, hyphens and underscores stay inside them).
_SEPARATORS: Final = str.maketrans(dict.fromkeys('!"#$%&()*+,./:;<=>?@[\\]^`{|}~', " "))


@dataclass(frozen=True, slots=True)
class _Cues:
    """One feature's cues: whole ``words``, word ``phrases`` (matched on the text with its
    punctuation removed) and ``raw`` strings (matched on the lowered text as written)."""

    words: frozenset[str]
    phrases: tuple[str, ...] = ()
    raw: tuple[str, ...] = ()


def _cues(words: str = "", phrases: str = "", raw: Iterable[str] = ()) -> _Cues:
    """Cues from whitespace-separated ``words`` and ``|``-separated ``phrases``."""
    spaced = (" ".join(phrase.split()) for phrase in phrases.split("|"))
    return _Cues(
        frozenset(words.split()), tuple(f" {phrase} " for phrase in spaced if phrase), tuple(raw)
    )


# -- hard cues ------------------------------------------------------------------------------

_FENCE = _cues(raw=["```"])
_TRACE = _cues(
    "stacktrace oomkilled errno segfault",
    "stack trace | core dumped | segmentation fault | exit code",
    [
        "traceback (most recent call last)",
        'file "',
        "error:",
        "exception:",
        "exception in thread",
        "\n\tat ",
        "\n    at ",
        "panic:",
    ],
)
_CODE = _cues(
    "def return import const let function fn func async await lambda",
    "",
    ["{", "}", ";", "=>", "->", "::", "==", "!=", "&&", "||", "+=", "()", "_", "self.", "</"],
)
_EXPERT = _cues(  # technical and professional vocabulary
    """api apis sql database databases schema schemas index indexes indices thread threads
    thread-safe threading concurrency concurrent concurrently deadlock deadlocks latency
    throughput p99 p95 kubernetes k8s docker terraform kafka postgres postgresql redis
    cache caching queue queues regex parser parsing compiler algorithm algorithms recursion
    recursive distributed consistency consistent idempotent idempotency encryption encrypted
    authentication oauth saml sso microservice microservices monolith memory jvm ast
    decorator decorators coroutine coroutines generic generics closure closures backoff
    retry retries jitter http tcp dns tls websocket websockets lock-free mutex big-o legal
    contract contracts clause clauses compliance compliant regulation regulations regulatory
    gdpr enforceable enforceability liability liabilities ifrs gaap hedge hedging derivatives
    dosage dosages interaction interactions clinical diagnosis diagnostic statistical
    statistics statistically hypothesis hypotheses""",
    """race condition | garbage collection | garbage collector | unit test | unit tests |
    revenue recognition""",
    ["o(n", "o(1", "o(log"],
)
_MATHS = _cues(
    """prove proves proving proof proofs theorem theorems lemma integral integrals integrate
    integration derivative differentiate derive derives deriving derivation induction
    eigenvalue eigenvalues eigenvector eigenvectors matrix matrices converge converges
    convergence convergent diverge diverges divergent probability probabilities variance
    polynomial polynomials irrational modulo combinatorics combinatorial recurrence bayes
    bayesian permutation permutations regression lagrange least-squares significant
    significance optimal asymptotic asymptotically iff series equation equations inequality
    inequalities solve solving nth geometric geometrically""",
    """expected value | expected number | least squares | infinitely many | if and only if |
    closed form | how many ways | real solutions | real solution""",
    (
        *(r"\frac", r"\sum", r"\int", r"\sqrt", r"\lim", r"\prod", r"\infty", r"\partial"),
        *(r"\cdot", r"\mathbb", r"\binom", r"\alpha", r"\theta"),
        *"∑∫√∞∂≤≥≠±",
    ),
)
_ARITH = _cues(raw=["+", "*", "^", "="])
_REASON = _cues(
    """compare compares compared comparing comparison comparisons versus vs why design designs
    designing architect architecture architectural analyse analyze analyses analysis
    analysing analyzing analytical trade-off trade-offs tradeoff tradeoffs plan plans
    planning strategy strategies strategic evaluate evaluates evaluating evaluation assess
    assessing assessment justify justified justifies justification reason reasons reasoning
    reasoned explain explains explaining explanation implication implications consequence
    consequences diagnose debug debugging investigate investigation recommend recommendation
    recommendations critique optimise optimize optimising optimizing optimisation
    optimization refactor refactoring implement implementing implementation prioritise
    prioritize prioritisation prioritization weigh weighing risk risks scale scalable
    scalability scaling migrate migrating migration nuance nuanced hypothesis hypotheses
    estimate estimates estimating estimation second-order reconcile propose infer inference
    generalise generalize consider considering consideration considerations step-by-step""",
    """step by step | how would | how should | how does | how do | how can | how could |
    pros and cons | root cause | what if | edge case | edge cases | trade offs |
    what would happen | threat model | for and against | what else | went wrong | should we |
    should i | should a | should an | should our | should the | should my | walk me through |
    walk through | what would you | which approach | which option""",
)
_CONSTRAINT = _cues(
    """must exactly without ensure ensures ensuring required require requires requirement
    requirements constraint constraints json schema yaml csv table bullet bullets markdown
    format formatted formatting preserve preserving strict strictly handle handling include
    including cover covering flag each every all normalise normalize normalised normalized
    deduplicate deduplicated deduplication don't""",
    """at least | at most | no more than | no fewer than | no less than | no longer than |
    do not | only use | make sure | keep it | keep the | keep same""",
)
_OUTPUT = _cues(
    """detailed in-depth comprehensive thorough thoroughly essay essays report reports article
    articles op-ed story chapter proposal speech eulogy guide document policy whitepaper
    long-form sonnet villanelle sestina novel screenplay metre iambic""",
    """in detail | in depth | white paper | with tests | with unit tests | minutes long |
    full implementation | full report | full plan | worked example | worked examples""",
    ["00 words", "00-word"],
)

# -- easy cues (subtract; first and last paragraphs only) -------------------------------------

_EASY = _cues(
    """translate translated translation synonym synonyms antonym antonyms rhyme rhymes spell
    spelling spell-check briefly define typo typos sentiment tl tldr round haiku tweet
    shorten capitalise capitalize one-word one-line one-sentence""",
    """one word | one sentence | one line | single word | yes or no | true or false |
    keep it short | short answer | in a word | capital of | who wrote | who painted | who is |
    what year | definition of | fix the grammar | positive or negative | how do i |
    how can i | what does | what's the | what is the | what is a | what's a | is this |
    is the | is it | which is | which one | which language | which planet | subject line |
    write a short | write a one | write a two | rewrite in | extract the | pull out the |
    pull the | get the | summarise this | summarize this | summarise the | summarize the |
    summarise in | summarize in | in two sentences | in three sentences | in a few sentences |
    according to this | according to the | in this email | in this message | in this text |
    in this paragraph | in this receipt | in this note | from this text | from the text |
    from this email | from the email | from this message | from the message |
    from this paragraph | from the paragraph | from this list | from the list |
    which department | to this customer to say | to this customer and tell |
    to this customer to tell""",
    (
        "one of:",
        "options:",
        "only.",
        *(f"{lead} {d}" for lead in ("convert", "what is", "what's") for d in "0123456789"),
    ),
)

# -- weights ----------------------------------------------------------------------------------

# (cues, weight, saturation k): a feature adds weight * c / (c + k) for c matches.
_HARD: Final[tuple[tuple[_Cues, float, float], ...]] = (
    (_FENCE, 1.0, 1.0),
    (_TRACE, 1.0, 1.0),
    (_CODE, 0.5, 3.0),
    (_EXPERT, 0.8, 1.5),
    (_MATHS, 3.0, 0.8),
    (_ARITH, 0.3, 2.0),
    (_REASON, 3.0, 1.2),
    (_CONSTRAINT, 1.5, 2.5),
    (_OUTPUT, 1.5, 1.0),
)
_NUMBER_WEIGHT: Final = 0.5  # numbers: c / (c + 6)
_NUMBER_K: Final = 6.0
_EASY_WEIGHT: Final = 2.8
_EASY_K: Final = 1.0
_LENGTH_WEIGHT: Final = 0.6  # per doubling of the prompt beyond 60 characters
_LENGTH_CAP: Final = 4.0
_TURNS_WEIGHT: Final = 0.9  # earlier user turns: c / (c + 3)
_MAX_TOKENS_WEIGHT: Final = 0.35  # per doubling of max_tokens beyond 2048
_MAX_TOKENS_CAP: Final = 1.0
_STRUCTURED_WEIGHT: Final = 0.6  # a JSON schema response format or tools
_BIAS: Final = 1.35
_WEIGHTS: Final = (
    _LENGTH_WEIGHT,
    *(weight for _, weight, _ in _HARD),
    _NUMBER_WEIGHT,
    -_EASY_WEIGHT,
)


class _View:
    """One piece of text, lowered and split into words once, ready for counting cues."""

    __slots__ = ("bag", "padded", "raw")

    def __init__(self, text: str) -> None:
        self.raw = text.lower()
        words = self.raw.translate(_SEPARATORS).split()
        self.bag = Counter(words)
        self.padded = f" {' '.join(words)} "

    def count(self, cues: _Cues) -> int:
        bag = self.bag
        found = sum(bag[word] for word in bag.keys() & cues.words)
        padded = self.padded
        found += sum(padded.count(phrase) for phrase in cues.phrases)
        raw = self.raw
        return found + sum(raw.count(text) for text in cues.raw)

    def numbers(self) -> int:
        return sum(n for word, n in self.bag.items() if word[0].isdigit())


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
    text = prompt if length <= 2 * _WINDOW else f"{prompt[:_WINDOW]}\n\n{prompt[-_WINDOW:]}"
    cut = text.find("\n\n")
    views: dict[str, _View] = {}

    def view(piece: str) -> _View:  # a short prompt is often its own first paragraph
        found = views.get(piece)
        if found is None:
            found = views[piece] = _View(piece)
        return found

    whole = view(text)
    first = view((text if cut < 0 else text[:cut])[:_FIRST])
    values = [min(math.log2(1.0 + length / 60.0), _LENGTH_CAP)]
    for cues, _weight, k in _HARD:
        count = whole.count(cues)
        if count:
            count += first.count(cues)
        values.append(_saturated(count, k))
    values.append(_saturated(whole.numbers(), _NUMBER_K))
    easy = view(text[:_EDGE] if cut < 0 else text[:cut][:_EDGE]).count(_EASY)
    if cut >= 0:
        easy += view(text[text.rfind("\n\n") + 2 :][-_EDGE:]).count(_EASY)
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
