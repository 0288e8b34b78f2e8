from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costguard.cache._guard import conflicts

PAIRS = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "semantic_pairs.jsonl"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Translate 'good morning' to French", "Translate 'good morning' to Spanish"),
        (
            "translate to french: where is the station?",
            "translate to spanish: where is the station?",
        ),
        (
            "Write a function in Python that sorts a list",
            "Write a function in Rust that sorts a list",
        ),
        ("Write hello world in C", "Write hello world in C++"),
    ],
)
def test_a_different_target_language_conflicts(a: str, b: str) -> None:
    assert conflicts(a, b) is not None
    assert "language" in (conflicts(a, b) or "")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "What is the capital of Germany?"),
        ("what is the capital of france", "what is the capital of germany"),
        ("Who wrote Hamlet?", "Who wrote Macbeth?"),
        ("Weather in New York", "Weather in New Jersey"),
        ("I'm visiting Paris in March", "I'm visiting Paris in April"),
        ("Compare Plan A with the others", "Compare Plan B with the others"),
    ],
)
def test_a_different_name_or_place_conflicts(a: str, b: str) -> None:
    assert conflicts(a, b) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 15% of 200?", "What is 20% of 200?"),
        ("Give me 3 tips", "Give me 5 tips"),
        ("What is 3.14 rounded?", "What is 3.15 rounded?"),
        ("How much is 1,000 dollars?", "How much is 100 dollars?"),
        ("List 10 names", "List twenty names"),
        ("Explain the 2nd law", "Explain the 1st law"),
        ("What is 5 + 3?", "What is 5 - 3?"),
        ("Is 3 greater than 5?", "Is 5 greater than 3?"),
        ("What is 2 x 3?", "What is 2 + 3?"),
    ],
)
def test_different_numbers_or_arithmetic_conflict(a: str, b: str) -> None:
    assert conflicts(a, b) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How far is 5 km?", "How far is 5 miles?"),
        ("Convert 30 degrees Celsius to Fahrenheit", "Convert 30 degrees Fahrenheit to Celsius"),
        ("Price of a $5 coffee", "Price of a €5 coffee"),
        ("How many grams are in a pound?", "How many ounces are in a pound?"),
        ("How many hours in a year?", "How many days in a year?"),
        ("How much do I earn per hour?", "How much do I earn per day?"),
        ("Is 8 GB of RAM enough?", "Is 8 MB of RAM enough?"),
    ],
)
def test_different_units_conflict(a: str, b: str) -> None:
    assert conflicts(a, b) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ('What does "break the ice" mean?', 'What does "break a leg" mean?'),
        ("Reverse the string 'hello world'", "Reverse the string 'hello there'"),
        ("Meaning of “carpe diem”", "Meaning of “memento mori”"),
    ],
)
def test_different_quoted_text_conflicts(a: str, b: str) -> None:
    assert "quoted" in (conflicts(a, b) or "")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What does os.path.join do?", "What does os.path.split do?"),
        ("Explain my_function", "Explain my_func"),
        ("Why does getUserName return null?", "Why does getUserId return null?"),
        ("How do I use `git rebase`?", "How do I use `git merge`?"),
        ("What does the HashMap class do?", "What does the TreeMap class do?"),
        ("What does npm install --force do?", "What does npm install --save-dev do?"),
        ("Why does parse() fail?", "Why does load() fail?"),
        ("Fix this:\n```\nx = f(a)\n```", "Fix this:\n```\nx = g(a)\n```"),
    ],
)
def test_different_code_identifiers_conflict(a: str, b: str) -> None:
    assert conflicts(a, b) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Is Python a compiled language?", "Is Python not a compiled language?"),
        ("Pasta recipe with eggs", "Pasta recipe without eggs"),
        ("Which foods contain gluten?", "Which foods don't contain gluten?"),
        ("What should I do before an interview?", "What should I never do before an interview?"),
        ("Is it legal to drive with headphones?", "Is it illegal to drive with headphones?"),
        ("Summarise it, including the numbers", "Summarise it, excluding the numbers"),
    ],
)
def test_a_negation_mismatch_conflicts(a: str, b: str) -> None:
    assert "negation" in (conflicts(a, b) or "")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Sort the list in ascending order", "Sort the list in descending order"),
        ("How do I encrypt a file?", "How do I decrypt a file?"),
        ("What are the advantages of remote work?", "What are the disadvantages of remote work?"),
    ],
)
def test_opposite_terms_conflict(a: str, b: str) -> None:
    assert conflicts(a, b) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "What's France's capital city?"),
        ("what is the capital of france", "Capital of France?"),
        ("Convert 3 miles to km", "Convert three miles to kilometres"),
        ("What is 15% of 80?", "What is 15 percent of 80?"),
        ("What is 5 plus 3?", "What's 5 + 3?"),
        ("What is 12 times 12?", "What is 12 multiplied by 12?"),
        ("Convert 30 degrees Celsius to Fahrenheit", "What is 30 °C in Fahrenheit?"),
        ("Why doesn't my code compile?", "Why does my code not compile?"),
        ("What does `os.path.join` do?", "Explain os.path.join"),
        ("How do I reverse a list in Python?", "How can I reverse a Python list?"),
        ("Who is the author of Hamlet?", "Who wrote Hamlet?"),
        ('Translate "thank you" into German', 'How do I say "thank you" in German?'),
        ("How does WiFi work?", "How does Wi-Fi work?"),
        ("Write a haiku about the sea", "Compose a haiku about the ocean"),
    ],
)
def test_paraphrases_keeping_the_same_details_pass(a: str, b: str) -> None:
    assert conflicts(a, b) is None


def test_the_guard_explains_what_differs() -> None:
    assert conflicts("capital of France", "capital of Germany") == (
        "different names: france vs germany"
    )
    assert conflicts("5 km", "5 miles") == "different units: 5 km vs 5 mi"


@given(st.text(max_size=200))
def test_a_text_never_conflicts_with_itself(text: str) -> None:
    assert conflicts(text, text) is None


@given(st.text(max_size=120), st.text(max_size=120))
def test_the_guard_is_total_and_symmetric_in_verdict(a: str, b: str) -> None:
    assert (conflicts(a, b) is None) == (conflicts(b, a) is None)


def test_the_guard_rejects_most_hard_negatives_and_few_paraphrases_of_the_labelled_set() -> None:
    pairs = [json.loads(line) for line in PAIRS.read_text("utf-8").splitlines()]
    guarded = [p for p in pairs if not p["same"] and p["kind"] != "topic"]
    same = [p for p in pairs if p["same"]]
    assert sum(conflicts(p["a"], p["b"]) is not None for p in guarded) >= 0.95 * len(guarded)
    assert sum(conflicts(p["a"], p["b"]) is not None for p in same) <= 0.02 * len(same)
