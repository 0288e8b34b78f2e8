"""The near-miss guard: two prompts whose embeddings are close but whose answers differ.

Sentence embeddings are bad at exactly the details that change an answer: "capital of France"
and "capital of Germany", "translate to French" and "to Spanish", "5 km" and "5 miles", "is"
and "is not" all score high. :func:`conflicts` compares the two texts' details and names the
first difference it finds; the semantic cache serves a stored answer only when there is none.

It is deliberately cautious: a difference it cannot rule out costs a cache miss (one more
model call), never a wrong answer. Pure Python, no model; the regexes compile once and each
text's details are memoised.

What it compares (each text against the other):

- numbers, with the unit or currency attached (``5 km``, ``$5``, ``5%``, ``3.50``, ``1,000``,
  ``three``, ``2nd``), as a multiset; in order when arithmetic or comparison words are present
  (``5 - 3`` vs ``3 - 5``, ``is 3 greater than 5``);
- unit words anywhere (``miles to km`` vs ``miles to meters``);
- quoted strings, fenced code blocks, URLs and e-mail addresses, exactly;
- code identifiers: ``snake_case``, ``camelCase``, ``PascalCase``, ``dotted.names``,
  ``backticked`` text, ``calls()``, ``--flags``;
- natural and programming language names (``French`` vs ``Spanish``, ``Python`` vs ``Rust``);
- names: capitalised words (not a sentence's ordinary first word), acronyms, and a list of
  countries, cities, months, days and planets in any case; each must appear in the other text;
- negation: ``not``, ``no``, ``never``, ``without``, ``n't``, ``except``, ... (counted), and
  negating prefixes (``legal`` / ``illegal``, ``install`` / ``uninstall``);
- opposites: ``ascending``/``descending``, ``encrypt``/``decrypt``, ``min``/``max``, ...
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["conflicts"]

# -- vocabularies -------------------------------------------------------------------------

_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "dozen": 12,
}
_MULTIPLIERS = {
    "hundred": 100,
    "thousand": 1_000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
    "trillion": 1_000_000_000_000,
}
_ORDINAL_WORDS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "twentieth": 20,
    "hundredth": 100,
}

# canonical unit -> spellings (lowercase). Spellings of one letter, or that are everyday
# words, only count right after a number (see _AMBIGUOUS_UNITS).
_UNITS: dict[str, tuple[str, ...]] = {
    "km": ("km", "kms", "kilometer", "kilometers", "kilometre", "kilometres"),
    "m": ("m", "meter", "meters", "metre", "metres"),
    "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "mm": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    "mi": ("mi", "mile", "miles"),
    "ft": ("ft", "foot", "feet"),
    "in": ("in", "inch", "inches"),
    "yd": ("yd", "yds", "yard", "yards"),
    "kg": ("kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"),
    "g": ("g", "gram", "grams", "gramme", "grammes"),
    "mg": ("mg", "milligram", "milligrams"),
    "lb": ("lb", "lbs", "pound", "pounds"),
    "oz": ("oz", "ounce", "ounces"),
    "t": ("ton", "tons", "tonne", "tonnes"),
    "st": ("stone", "stones"),
    "l": ("l", "liter", "liters", "litre", "litres"),
    "ml": ("ml", "milliliter", "milliliters", "millilitre", "millilitres"),
    "gal": ("gal", "gallon", "gallons"),
    "cup": ("cup", "cups"),
    "tbsp": ("tbsp", "tablespoon", "tablespoons"),
    "tsp": ("tsp", "teaspoon", "teaspoons"),
    "pt": ("pint", "pints"),
    "qt": ("quart", "quarts"),
    "degC": (
        "°c",
        "celsius",
        "centigrade",
        "degrees celsius",
        "degree celsius",
        "degrees centigrade",
        "deg c",
        "degrees c",
    ),
    "degF": ("°f", "fahrenheit", "degrees fahrenheit", "degree fahrenheit", "deg f", "degrees f"),
    "K": ("kelvin", "kelvins"),
    "deg": ("°", "degree", "degrees", "deg"),
    "rad": ("rad", "radian", "radians"),
    "ms": ("ms", "millisecond", "milliseconds"),
    "s": ("s", "sec", "secs", "seconds"),
    "min": ("min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "month": ("month", "months"),
    "year": ("yr", "yrs", "year", "years"),
    "decade": ("decade", "decades"),
    "century": ("century", "centuries"),
    "bit": ("bit", "bits"),
    "B": ("byte", "bytes"),
    "KB": ("kb", "kilobyte", "kilobytes", "kib"),
    "MB": ("mb", "megabyte", "megabytes", "mib"),
    "GB": ("gb", "gigabyte", "gigabytes", "gib"),
    "TB": ("tb", "terabyte", "terabytes", "tib"),
    "mph": ("mph",),
    "kmh": ("km/h", "kph", "kmh"),
    "m/s": ("m/s",),
    "W": ("w", "watt", "watts"),
    "kW": ("kw", "kilowatt", "kilowatts"),
    "kWh": ("kwh",),
    "V": ("v", "volt", "volts"),
    "A": ("amp", "amps", "ampere", "amperes"),
    "Hz": ("hz", "hertz"),
    "GHz": ("ghz",),
    "MHz": ("mhz",),
    "kcal": ("kcal", "calorie", "calories"),
    "J": ("joule", "joules"),
    "acre": ("acre", "acres"),
    "ha": ("hectare", "hectares"),
    "%": ("%", "percent", "per cent", "percentage"),
    "k": ("k",),
    "USD": ("$", "usd", "dollar", "dollars", "buck", "bucks"),
    "EUR": ("€", "eur", "euro", "euros"),
    "GBP": ("£", "gbp", "sterling"),
    "JPY": ("¥", "jpy", "yen"),
    "CNY": ("cny", "yuan", "rmb", "renminbi"),
    "INR": ("₹", "inr", "rupee", "rupees"),
    "CHF": ("chf", "franc", "francs"),
    "CAD": ("cad",),
    "AUD": ("aud",),
    "BTC": ("btc", "bitcoin", "bitcoins"),
    "ETH": ("eth", "ether"),
}
_UNIT_OF = {spelling: unit for unit, spellings in _UNITS.items() for spelling in spellings}
# Singular time words are everyday speech ("what year", "one day"): units only after a number
# or a rate word ("per hour", "a day", "each week").
_TIME_SINGULARS = ("minute", "hour", "day", "week", "month", "year", "decade", "century")
# Spellings that are ordinary words or single letters: units only after a number.
_AMBIGUOUS_UNITS = frozenset(
    {
        "ton",
        "tons",
        *_TIME_SINGULARS,
        "m",
        "mi",
        "ft",
        "in",
        "g",
        "l",
        "s",
        "h",
        "w",
        "v",
        "x",
        "k",
        "t",
        "st",
        "pt",
        "min",
        "sec",
        "ms",
        "cup",
        "cups",
        "stone",
        "stones",
        "deg",
        "rad",
        "amp",
        "amps",
        "times",
        "pound",
        "pounds",
        "buck",
        "bucks",
        "ether",
        "franc",
        "francs",
        "bit",
        "bits",
        "cad",
        "aud",
        "eth",
        "$",
        "€",
        "£",
        "¥",
        "₹",
        "°",
        "%",
    }
)
_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}

_LANGUAGES = frozenset(
    {
        # natural languages (and the adjectives that name them)
        "english",
        "french",
        "spanish",
        "german",
        "italian",
        "portuguese",
        "dutch",
        "flemish",
        "swedish",
        "norwegian",
        "danish",
        "finnish",
        "icelandic",
        "polish",
        "czech",
        "slovak",
        "hungarian",
        "romanian",
        "bulgarian",
        "greek",
        "russian",
        "ukrainian",
        "belarusian",
        "serbian",
        "croatian",
        "bosnian",
        "slovenian",
        "albanian",
        "lithuanian",
        "latvian",
        "estonian",
        "turkish",
        "arabic",
        "hebrew",
        "persian",
        "farsi",
        "urdu",
        "hindi",
        "bengali",
        "punjabi",
        "gujarati",
        "marathi",
        "tamil",
        "telugu",
        "kannada",
        "malayalam",
        "nepali",
        "sinhala",
        "chinese",
        "mandarin",
        "cantonese",
        "japanese",
        "korean",
        "vietnamese",
        "thai",
        "lao",
        "khmer",
        "burmese",
        "indonesian",
        "malay",
        "tagalog",
        "filipino",
        "swahili",
        "amharic",
        "yoruba",
        "igbo",
        "hausa",
        "zulu",
        "xhosa",
        "afrikaans",
        "somali",
        "latin",
        "esperanto",
        "catalan",
        "basque",
        "galician",
        "welsh",
        "irish",
        "gaelic",
        "scots",
        "maori",
        "hawaiian",
        "klingon",
        "pirate",
        "emoji",
        "braille",
        "morse",
        # programming, query and markup languages
        "python",
        "javascript",
        "typescript",
        "java",
        "kotlin",
        "scala",
        "groovy",
        "c++",
        "c#",
        "f#",
        "objective-c",
        "golang",
        "rust",
        "ruby",
        "php",
        "perl",
        "swift",
        "haskell",
        "ocaml",
        "elixir",
        "erlang",
        "clojure",
        "lisp",
        "lua",
        "dart",
        "matlab",
        "fortran",
        "cobol",
        "pascal",
        "delphi",
        "vba",
        "zig",
        "nim",
        "solidity",
        "sql",
        "postgresql",
        "mysql",
        "sqlite",
        "bash",
        "zsh",
        "powershell",
        "html",
        "css",
        "scss",
        "json",
        "yaml",
        "toml",
        "xml",
        "csv",
        "markdown",
        "latex",
        "graphql",
        "terraform",
    }
)

# Lowercase names that are entities even when typed in lowercase.
_GAZETTEER = frozenset(
    {
        # countries and regions
        "afghanistan",
        "albania",
        "algeria",
        "argentina",
        "armenia",
        "australia",
        "austria",
        "azerbaijan",
        "bangladesh",
        "belarus",
        "belgium",
        "bolivia",
        "bosnia",
        "brazil",
        "bulgaria",
        "cambodia",
        "cameroon",
        "canada",
        "chile",
        "china",
        "colombia",
        "croatia",
        "cuba",
        "cyprus",
        "czechia",
        "denmark",
        "ecuador",
        "egypt",
        "england",
        "estonia",
        "ethiopia",
        "europe",
        "finland",
        "france",
        "georgia",
        "germany",
        "ghana",
        "greece",
        "guatemala",
        "haiti",
        "honduras",
        "hungary",
        "iceland",
        "india",
        "indonesia",
        "iran",
        "iraq",
        "ireland",
        "israel",
        "italy",
        "jamaica",
        "japan",
        "jordan",
        "kazakhstan",
        "kenya",
        "korea",
        "kuwait",
        "laos",
        "latvia",
        "lebanon",
        "libya",
        "lithuania",
        "luxembourg",
        "madagascar",
        "malaysia",
        "mali",
        "malta",
        "mexico",
        "mongolia",
        "morocco",
        "mozambique",
        "myanmar",
        "nepal",
        "netherlands",
        "nicaragua",
        "niger",
        "nigeria",
        "norway",
        "pakistan",
        "panama",
        "paraguay",
        "peru",
        "philippines",
        "poland",
        "portugal",
        "qatar",
        "romania",
        "russia",
        "rwanda",
        "scotland",
        "senegal",
        "serbia",
        "singapore",
        "slovakia",
        "slovenia",
        "somalia",
        "spain",
        "sudan",
        "sweden",
        "switzerland",
        "syria",
        "taiwan",
        "tanzania",
        "thailand",
        "tunisia",
        "turkey",
        "uganda",
        "ukraine",
        "uruguay",
        "usa",
        "uk",
        "uae",
        "venezuela",
        "vietnam",
        "wales",
        "yemen",
        "zambia",
        "zimbabwe",
        "africa",
        "asia",
        "america",
        "antarctica",
        "oceania",
        # cities
        "amsterdam",
        "athens",
        "bangkok",
        "barcelona",
        "beijing",
        "berlin",
        "boston",
        "brussels",
        "budapest",
        "cairo",
        "chicago",
        "copenhagen",
        "delhi",
        "dubai",
        "dublin",
        "edinburgh",
        "geneva",
        "hamburg",
        "helsinki",
        "istanbul",
        "jakarta",
        "lagos",
        "lisbon",
        "london",
        "madrid",
        "manila",
        "melbourne",
        "miami",
        "milan",
        "montreal",
        "moscow",
        "mumbai",
        "munich",
        "nairobi",
        "oslo",
        "ottawa",
        "paris",
        "prague",
        "rome",
        "seattle",
        "seoul",
        "shanghai",
        "stockholm",
        "sydney",
        "tokyo",
        "toronto",
        "vancouver",
        "vienna",
        "warsaw",
        "zurich",
        # months, days, planets
        "january",
        "february",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "mercury",
        "venus",
        "earth",
        "mars",
        "jupiter",
        "saturn",
        "uranus",
        "neptune",
        "pluto",
    }
)

# Ordinary words that start sentences capitalised; at a sentence start they are not names.
_COMMON = frozenset(
    """
    a about above according actually add after again against all also although always am an
    and another answer any anyone anything are as ask at be because been before being below
    best between both brief briefly but by calculate can change check choose compare compose
    convert correct could create daily define describe design detail did do does doing done
    draft each easy edit either else even every everything example explain few fill find
    first fix for from generate get give go good got had has have having he hello help her
    here hey hi his how however i i'd i'll i'm i've if imagine implement in include instead
    into is it it's its just keep kindly let let's list look make many may maybe me might
    more most much must my name need never new next no nor not now of off ok okay on once
    one only or other our out outline over paraphrase please pretend provide quick quickly
    rate read recommend reply respond rewrite right say script see she should show since
    simple simplify so solve some someone something sort still suggest summarise summarize
    summary suppose sure take teach tell thank thanks that the their them then there these
    they think this those though to today tomorrow translate true under until up us use
    using very want was we well were what what's whats when where whether which while who
    whom whose why will with within without would write yes yesterday yet you your
    analyse analyze approximate argue avoid bake build cite clarify classify combine compute
    configure cook count critique debug deploy derive detect determine difference differences
    discuss distinguish draw elaborate estimate evaluate expand extract factor fetch format
    guide identify ideas illustrate improve install invert join load measure mention merge
    optimise optimize parse plan predict prepare print proofread prove question quick reasons
    remove rename replace return reverse review round run save schedule send set setup shorten
    split state steps store test tips top update upgrade ways dear also finally lastly q
    cheap healthy short long good bad great fast slow
    """.split()  # noqa: SIM905  (a word list reads better as text)
)

_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "without",
        "none",
        "nobody",
        "nothing",
        "nowhere",
        "neither",
        "nor",
        "cannot",
        "except",
        "excluding",
        "exclude",
        "excludes",
        "lacking",
        "non",
    }
)

_OPPOSITES: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    (frozenset(a.split()), frozenset(b.split()))
    for a, b in (
        ("ascending ascend asc", "descending descend desc"),
        ("increase increasing increases increased", "decrease decreasing decreases decreased"),
        (
            "maximum max maximise maximize largest biggest highest",
            "minimum min minimise minimize smallest lowest",
        ),
        ("longest", "shortest"),
        ("best", "worst"),
        ("before", "after"),
        ("above", "below"),
        ("encrypt encryption encrypting", "decrypt decryption decrypting"),
        ("encode encoding encoder", "decode decoding decoder"),
        ("compress compression compressing", "decompress decompression decompressing"),
        (
            "serialize serialise serialization serialisation",
            "deserialize deserialise deserialization deserialisation",
        ),
        ("import importing", "export exporting"),
        ("upload uploading", "download downloading"),
        ("buy buying", "sell selling"),
        ("add adding", "remove removing delete deleting"),
        ("enable enabling", "disable disabling"),
        ("push", "pull"),
        ("true", "false"),
        ("advantages pros benefits", "disadvantages cons drawbacks"),
        ("north northern", "south southern"),
        ("east eastern", "west western"),
        ("hot hottest", "cold coldest"),
        ("faster fastest", "slower slowest"),
        ("cheapest cheaper", "expensive"),
        ("uppercase upper", "lowercase lower"),
        ("input inputs", "output outputs"),
        ("synchronous sync", "asynchronous async"),
        ("union", "intersection"),
        ("male men boy boys", "female women girl girls"),
        ("positive", "negative"),
        ("even", "odd"),
        ("earliest oldest", "latest newest"),
        ("left", "right"),
        ("open opening", "close closing"),
        ("start starting", "stop stopping"),
        ("inner", "outer"),
        ("win winning", "lose losing"),
        ("prefix", "suffix"),
        ("first", "last"),
        ("horizontal horizontally", "vertical vertically"),
        ("client", "server"),
        ("frontend", "backend"),
    )
)

# -- regexes --------------------------------------------------------------------------------

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"'`]+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I
)
_BACKTICK = re.compile(r"`([^`\n]+)`")
_QUOTED = re.compile(
    r"\"([^\"\n]{1,500})\"|“([^”\n]{1,500})”|«([^»\n]{1,500})»|„([^“”\n]{1,500})[“”]"
    r"|\u2018([^\u2019\n]{1,500})\u2019|(?<![\w'])'([^'\n]{1,500}?)'(?![\w'])"
)
_SNAKE = re.compile(r"\b[A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]*[A-Za-z0-9]\b|\b__\w+__\b")
_FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
_CAMEL = re.compile(r"\b[a-z]+[A-Z][A-Za-z0-9]*\b|\b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b")
_DOTTED = re.compile(r"\b[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+(?:\(\))?")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")
_LANGUAGE_SPECIAL = re.compile(r"(?<![\w+#-])(c\+\+|c#|f#|objective-c)(?![\w+#])", re.I)
_WORD = re.compile(r"[^\W\d_](?:[\w'\u2019-]*\w)?")
_TOKEN = re.compile(r"[\w'\u2019]+(?:[.\-+#/][\w'\u2019]+)*[+#]*")
_NEGATION_SUFFIX = re.compile(r"\b\w+n['\u2019]t\b", re.I)
_NON_PREFIX = re.compile(r"\bnon-\w", re.I)
_NEGATING_PREFIX = re.compile(r"^(?:un|in|im|il|ir|dis|non-?)(?=\w{3})")
_RATE = re.compile(rf"\b(?:per|a|an|each|every)\s+({'|'.join(_TIME_SINGULARS)})\b", re.I)
_POSSESSIVE = re.compile(r"['\u2019]s?$")

_UNIT_ALTERNATIVES = "|".join(
    re.escape(s).replace(r"\ ", r"\s+")
    for s in sorted(_UNIT_OF, key=len, reverse=True)
    if s not in _CURRENCY_SYMBOLS
)
_NW = "|".join(  # number, multiplier and ordinal words
    sorted([*_NUMBER_WORDS, *_MULTIPLIERS, *_ORDINAL_WORDS], key=len, reverse=True)
)
_OPERATOR_WORDS = {
    "plus": "+",
    "minus": "-",
    "times": "*",
    "multiplied by": "*",
    "divided by": "/",
    "to the power of": "^",
    "squared": "^2",
    "cubed": "^3",
    "modulo": "%",
    "mod": "%",
    "greater than": ">",
    "more than": ">",
    "larger than": ">",
    "bigger than": ">",
    "higher than": ">",
    "less than": "<",
    "fewer than": "<",
    "smaller than": "<",
    "lower than": "<",
    "at least": ">=",
    "at most": "<=",
    "equal to": "=",
    "equals": "=",
    "square root of": "sqrt",
    "root of": "root",
}
_OPERATOR_ALTERNATIVES = "|".join(
    re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_OPERATOR_WORDS, key=len, reverse=True)
)
# One number: currency symbol, digits (with , separators and a decimal part) or number words,
# an optional suffix (st/nd/rd/th, k) and an optional unit. Also arithmetic operators.
_NUMERIC = re.compile(
    rf"""
    (?P<cur>[$€£¥₹])?\s?
    (?:
        (?P<digits>(?<![\w.])\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|(?<![\w.])\d+(?:\.\d+)?|(?<![\w\d])\.\d+)
        (?P<ord>st|nd|rd|th)?
      | (?P<words>\b(?:{_NW})(?:[\s-]+(?:and\s+)?(?:{_NW}))*\b)
    )
    (?:\s?(?P<unit>(?:{_UNIT_ALTERNATIVES})(?![\w/])|%|°[cf]?))?
    | (?P<op>
        (?<=[\s\d(])[+*/\u00d7÷^=<>≤≥](?=[\s\d(.])
      | (?<=\d)\s?x(?=\s?\d)
      | (?<=[\s(])-\s?(?=[\d.(])
      | (?<=\d)\s?-(?=\s?[\d.(])
      | \b(?:{_OPERATOR_ALTERNATIVES})\b
    )
    """,
    re.X | re.I,
)
_STANDALONE_UNIT = re.compile(
    rf"(?<![\w/])(?:{_UNIT_ALTERNATIVES})(?![\w/])|°[cf]\b",
    re.I,
)
_OP_SYMBOLS = {"\u00d7": "*", "÷": "/", "≤": "<=", "≥": ">="}


# -- extraction ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Details:
    numbers: tuple[str, ...]  # sorted "value unit" strings
    sequence: tuple[str, ...]  # numbers and operators in order
    has_operator: bool
    values: tuple[str, ...]  # sorted values without units
    units: frozenset[str]  # canonical units named anywhere
    quotes: frozenset[str]
    code_blocks: tuple[str, ...]
    urls: frozenset[str]
    identifiers: frozenset[str]
    languages: frozenset[str]
    names: frozenset[str]  # lowercase
    negations: int
    words: frozenset[str]  # lowercase words
    tokens: frozenset[str]  # lowercase words and dotted/underscored tokens


def _number_words_value(text: str) -> float | None:
    total = 0.0
    current = 0.0
    seen = False
    for word in re.split(r"[\s-]+", text.lower()):
        if word in ("", "and"):
            continue
        if word in _NUMBER_WORDS:
            current += _NUMBER_WORDS[word]
        elif word in _ORDINAL_WORDS:
            current += _ORDINAL_WORDS[word]
        elif word in _MULTIPLIERS:
            current = (current or 1.0) * _MULTIPLIERS[word]
            if _MULTIPLIERS[word] >= 1000:
                total += current
                current = 0.0
        else:
            return None
        seen = True
    return total + current if seen else None


def _format(value: float) -> str:
    return f"{value:.10g}"


def _numbers(text: str) -> tuple[list[str], list[str], bool, list[str]]:
    numbers: list[str] = []
    sequence: list[str] = []
    values: list[str] = []
    has_operator = False
    for match in _NUMERIC.finditer(text):
        op = match.group("op")
        if op is not None:
            op = re.sub(r"\s+", " ", op.strip().lower())
            sequence.append(_OP_SYMBOLS.get(op, _OPERATOR_WORDS.get(op, op)))
            has_operator = True
            continue
        words = match.group("words")
        ordinal = bool(match.group("ord"))
        if words is not None:
            value = _number_words_value(words)
            if value is None:
                continue
            ordinal = words.lower().split()[-1] in _ORDINAL_WORDS
        else:
            value = float(match.group("digits").replace(",", ""))
        unit = match.group("unit")
        canonical = ""
        if match.group("cur"):
            canonical = _CURRENCY_SYMBOLS[match.group("cur")]
        elif unit:
            canonical = _UNIT_OF.get(_unit_key(unit), _unit_key(unit))
        if ordinal:
            canonical = "th"
        item = f"{_format(value)} {canonical}".strip()
        numbers.append(item)
        sequence.append(item)
        values.append(_format(value))
    return sorted(numbers), sequence, has_operator, sorted(values)


def _unit_key(spelling: str) -> str:
    return " ".join(spelling.lower().split())


def _strip_possessive(word: str) -> str:
    return _POSSESSIVE.sub("", word)


@functools.lru_cache(maxsize=4096)
def _details(text: str) -> _Details:
    code_blocks = tuple(re.sub(r"\s+", " ", m.group(0)).strip() for m in _FENCE.finditer(text))
    prose = _FENCE.sub(" ", text)
    urls = frozenset(m.group(0).rstrip(".,;:!?)").lower() for m in _URL.finditer(prose))
    prose = _URL.sub(" ", prose)
    quotes = frozenset(
        " ".join(next(g for g in m.groups() if g is not None).split())
        for m in _QUOTED.finditer(prose)
    )
    backticked = {" ".join(m.group(1).split()) for m in _BACKTICK.finditer(prose)}
    identifiers = {
        *backticked,
        *(m.group(0) for m in _SNAKE.finditer(prose)),
        *(m.group(0) for m in _CAMEL.finditer(prose)),
        *(m.group(1) for m in _CALL.finditer(prose)),
        *(m.group(0) for m in _FLAG.finditer(prose)),
    }
    for m in _DOTTED.finditer(prose):
        name = m.group(0).removesuffix("()")
        parts = name.split(".")
        if max(len(p) for p in parts) > 1 and not all(p.lower() in _COMMON for p in parts):
            identifiers.add(name)
    words = [m.group(0) for m in _WORD.finditer(prose)]
    lower_words = frozenset(_strip_possessive(w.lower()) for w in words) | frozenset(
        w.lower() for w in words
    )
    tokens = (
        lower_words
        | frozenset(t.lower().rstrip(".") for t in _TOKEN.findall(prose))
        | frozenset(i.lower() for i in identifiers)
    )
    tokens |= frozenset(t.replace("-", "") for t in tokens if "-" in t)
    languages = {w for w in lower_words if w in _LANGUAGES}
    languages.update(m.group(1).lower() for m in _LANGUAGE_SPECIAL.finditer(prose))
    names: set[str] = set()
    for m in _WORD.finditer(prose):
        word = _strip_possessive(m.group(0))
        lower = word.lower()
        if (
            not word
            or lower in _LANGUAGES
            or lower in _UNIT_OF
            or prose[m.start() - 1 : m.start()] == "°"
        ):
            continue  # compared as languages and units instead
        if lower in _GAZETTEER:
            names.add(lower)
        elif word[0].isupper() and (len(word) > 1 or word != "I"):
            if lower in _COMMON:
                continue  # a sentence's first word, or Title Case
            names.add(lower)
    numbers, sequence, has_operator, values = _numbers(prose)
    units = {
        _UNIT_OF[_unit_key(m.group(0))]
        for m in _STANDALONE_UNIT.finditer(prose)
        if _unit_key(m.group(0)) in _UNIT_OF and _unit_key(m.group(0)) not in _AMBIGUOUS_UNITS
    }
    units.update(_UNIT_OF[m.group(1).lower()] for m in _RATE.finditer(prose))
    units.update(n.split(" ", 1)[1] for n in numbers if " " in n and n.split(" ", 1)[1] != "th")
    lowered = prose.lower()
    negations = sum(1 for w in _WORD.findall(lowered) if w in _NEGATIONS)
    negations += len(_NEGATION_SUFFIX.findall(prose)) + len(_NON_PREFIX.findall(prose))
    return _Details(
        numbers=tuple(numbers),
        sequence=tuple(sequence),
        has_operator=has_operator,
        values=tuple(values),
        units=frozenset(units),
        quotes=quotes,
        code_blocks=code_blocks,
        urls=urls,
        identifiers=frozenset(identifiers),
        languages=frozenset(languages),
        names=frozenset(names),
        negations=negations,
        words=lower_words,
        tokens=tokens,
    )


# -- comparison ------------------------------------------------------------------------------


def _show(items: frozenset[str] | set[str] | tuple[str, ...]) -> str:
    shown = sorted(items)[:3]
    return ", ".join(shown) + (", ..." if len(items) > 3 else "") if shown else "none"


def _missing(names: frozenset[str], other_tokens: frozenset[str]) -> set[str]:
    return {
        n
        for n in names
        if n.lower() not in other_tokens and n.lower().replace("-", "") not in other_tokens
    }


def _negated_word(x: _Details, y: _Details) -> str | None:
    """A word of ``x`` that is a word of ``y`` with a negating prefix (legal / illegal)."""
    for word in sorted(x.words - y.words):
        stem = _NEGATING_PREFIX.sub("", word)
        if stem != word and stem in y.words:
            return word
    return None


def conflicts(a: str, b: str) -> str | None:
    """Why prompts ``a`` and ``b`` must not share an answer, or ``None`` if no reason is seen.

    ``None`` does not mean the prompts are equivalent, only that none of the details this
    guard compares (see the module docstring) differ; the embedding similarity decides the
    rest. The reason is short and human-readable, e.g. ``"different numbers: 5 vs 7"``.
    """
    if a == b:
        return None
    x, y = _details(a), _details(b)
    if x.code_blocks != y.code_blocks:
        return "different code blocks"
    if x.urls != y.urls:
        return f"different URLs: {_show(x.urls ^ y.urls)}"
    if x.quotes != y.quotes:
        return (
            f"different quoted text: {_show(x.quotes - y.quotes)} vs {_show(y.quotes - x.quotes)}"
        )
    if x.languages != y.languages:
        return (
            f"different languages: {_show(x.languages - y.languages)} vs "
            f"{_show(y.languages - x.languages)}"
        )
    if x.values == y.values and x.numbers != y.numbers:
        only_x, only_y = set(x.numbers) - set(y.numbers), set(y.numbers) - set(x.numbers)
        return f"different units: {_show(only_x)} vs {_show(only_y)}"
    if x.numbers != y.numbers:
        return (
            f"different numbers: {_show(set(x.numbers) - set(y.numbers))} vs "
            f"{_show(set(y.numbers) - set(x.numbers))}"
        )
    if (x.has_operator or y.has_operator) and x.sequence != y.sequence:
        return f"different arithmetic: {' '.join(x.sequence)} vs {' '.join(y.sequence)}"
    if x.units != y.units:
        return f"different units: {_show(x.units - y.units)} vs {_show(y.units - x.units)}"
    only_x, only_y = _missing(x.identifiers, y.tokens), _missing(y.identifiers, x.tokens)
    if only_x or only_y:
        return f"different identifiers: {_show(only_x)} vs {_show(only_y)}"
    only_x, only_y = _missing(x.names, y.tokens), _missing(y.names, x.tokens)
    if only_x or only_y:
        return f"different names: {_show(only_x)} vs {_show(only_y)}"
    if x.negations != y.negations:
        return "negation differs"
    negated = _negated_word(x, y) or _negated_word(y, x)
    if negated is not None:
        return f"negation differs: {negated}"
    for left, right in _OPPOSITES:
        side_x = (bool(x.words & left), bool(x.words & right))
        side_y = (bool(y.words & left), bool(y.words & right))
        if side_x != side_y and any(side_x) and any(side_y):
            words = sorted((x.words ^ y.words) & (left | right))
            return f"opposite terms: {' vs '.join(words[:2])}"
    return None
