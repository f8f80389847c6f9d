"""Generate data/code/train.jsonl and data/code/heldout.jsonl: small Python functions with unit tests.

Each task is ``{"uid", "prompt", "entry_point", "tests": [{"args": [...], "expected": ...}], "category"}``.
The tasks are easy on purpose: a small model should sometimes succeed, so that SDPO has successful
peers and specific feedback ("Test failed: sum_list([]) expected 0, got None") to learn from.

Why reference solutions live here and not in the files: the model must never see them, and the
expected values are *computed* from them (no hand-typed answers to get wrong). Then every task is
verified end to end: the reference source is run through the sandbox, exactly like a model's
completion, and must pass all of its tests. A task whose tests cannot survive JSON or the sandbox
(a tuple where a list is expected, a float rounding issue) fails loudly here instead of silently
giving every completion 0.

Run from the project root:  python data/make_code_tasks.py
"""
from __future__ import annotations

import inspect
import json
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdpo_lite.course.sandbox import run_batch  # noqa: E402

OUT = ROOT / "data" / "code"


# ------------------------------------------------------------------------------------------------
# Reference solutions (trusted code, kept here only)
# ------------------------------------------------------------------------------------------------
# --- list operations ---
def sum_list(xs):
    return sum(xs)


def max_of_list(xs):
    return max(xs) if xs else None


def count_evens(xs):
    return sum(1 for x in xs if x % 2 == 0)


def reverse_list(xs):
    return xs[::-1]


def remove_negatives(xs):
    return [x for x in xs if x >= 0]


def double_all(xs):
    return [2 * x for x in xs]


def first_and_last(xs):
    return [xs[0], xs[-1]] if xs else []


def unique_in_order(xs):
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def second_largest(xs):
    values = sorted(set(xs))
    return values[-2] if len(values) >= 2 else None


def running_total(xs):
    out, total = [], 0
    for x in xs:
        total += x
        out.append(total)
    return out


def count_occurrences(xs, target):
    return xs.count(target)


def merge_sorted(a, b):
    return sorted(a + b)


def chunk_list(xs, size):
    return [xs[i:i + size] for i in range(0, len(xs), size)]


def product_list(xs):
    result = 1
    for x in xs:
        result *= x
    return result


def average(xs):
    return sum(xs) / len(xs) if xs else 0.0


def rotate_left(xs, k):
    if not xs:
        return []
    k %= len(xs)
    return xs[k:] + xs[:k]


def flatten_once(xss):
    return [x for xs in xss for x in xs]


def index_of_max(xs):
    return xs.index(max(xs)) if xs else -1


def pairwise_sums(a, b):
    return [x + y for x, y in zip(a, b)]


# --- string operations ---
def reverse_string(s):
    return s[::-1]


def count_vowels(s):
    return sum(1 for c in s.lower() if c in "aeiou")


def is_palindrome(s):
    return s == s[::-1]


def capitalize_words(s):
    return " ".join(w.capitalize() for w in s.split(" "))


def remove_spaces(s):
    return s.replace(" ", "")


def count_words(s):
    return len(s.split())


def longest_word(s):
    best = ""
    for w in s.split():
        if len(w) > len(best):
            best = w
    return best


def char_frequency(s):
    out = {}
    for c in s:
        out[c] = out.get(c, 0) + 1
    return out


def initials(name):
    return "".join(w[0].upper() for w in name.split())


def replace_char(s, old, new):
    return s.replace(old, new)


def is_anagram(a, b):
    return sorted(a) == sorted(b)


def repeat_string(s, n):
    return s * n if n > 0 else ""


def swap_case(s):
    return s.swapcase()


def compress_string(s):
    out, i = "", 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out += s[i] + str(j - i)
        i = j
    return out


def starts_with_vowel(s):
    return len(s) > 0 and s[0].lower() in "aeiou"


def count_uppercase(s):
    return sum(1 for c in s if c.isupper())


def join_with_dash(words):
    return "-".join(words)


# --- conditionals ---
def sign(n):
    return 1 if n > 0 else (-1 if n < 0 else 0)


def fizzbuzz(n):
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)


def is_leap_year(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def grade(score):
    if score >= 90:
        return "A"
    if score >= 80:
        return "B"
    if score >= 70:
        return "C"
    if score >= 60:
        return "D"
    return "F"


def max_of_three(a, b, c):
    return max(a, b, c)


def absolute_value(n):
    return -n if n < 0 else n


def clamp(x, low, high):
    return max(low, min(x, high))


def is_even(n):
    return n % 2 == 0


def triangle_type(a, b, c):
    if a == b == c:
        return "equilateral"
    if a == b or b == c or a == c:
        return "isosceles"
    return "scalene"


def bigger_length(a, b):
    return a if len(a) >= len(b) else b


def ticket_price(age):
    if age < 12:
        return 5
    if age >= 65:
        return 7
    return 10


# --- loops ---
def factorial(n):
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result


def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def sum_to_n(n):
    return sum(range(1, n + 1))


def count_digits(n):
    return len(str(abs(n)))


def sum_of_digits(n):
    return sum(int(d) for d in str(abs(n)))


def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def power(base, exp):
    result = 1
    for _ in range(exp):
        result *= base
    return result


def multiplication_row(n, k):
    return [n * i for i in range(1, k + 1)]


def gcd(a, b):
    a, b = abs(a), abs(b)
    while b:
        a, b = b, a % b
    return a


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def count_down(n):
    return list(range(n, -1, -1))


def primes_up_to(n):
    return [k for k in range(2, n + 1) if is_prime(k)]


def reverse_number(n):
    digits = str(abs(n))[::-1]
    return -int(digits) if n < 0 else int(digits)


# ------------------------------------------------------------------------------------------------
# Tasks: (function, signature, what it should do, category, list of argument lists, split)
# ------------------------------------------------------------------------------------------------
L, S, C, W = "lists", "strings", "conditionals", "loops"
TASKS = [
    # lists
    (sum_list, "sum_list(xs)", "returns the sum of the numbers in the list xs (0 for an empty list)", L,
     [[[1, 2, 3]], [[]], [[-5, 5, -2]], [[10]]], "train"),
    (max_of_list, "max_of_list(xs)", "returns the largest number in the list xs, or None if the list is empty", L,
     [[[3, 9, 2]], [[]], [[-4, -1, -7]], [[5]]], "train"),
    (count_evens, "count_evens(xs)", "returns how many numbers in the list xs are even", L,
     [[[1, 2, 3, 4]], [[]], [[-2, -3, 0]], [[1, 3, 5]]], "train"),
    (reverse_list, "reverse_list(xs)", "returns a new list with the elements of xs in reverse order", L,
     [[[1, 2, 3]], [[]], [["a", "b"]], [[7]]], "train"),
    (remove_negatives, "remove_negatives(xs)", "returns a list of the numbers in xs that are not negative, in the same order", L,
     [[[1, -2, 3, -4]], [[]], [[-1, -2]], [[0, 5]]], "train"),
    (double_all, "double_all(xs)", "returns a list with every number in xs multiplied by 2", L,
     [[[1, 2, 3]], [[]], [[-4, 0]]], "train"),
    (first_and_last, "first_and_last(xs)", "returns a list with the first and the last element of xs, or an empty list if xs is empty", L,
     [[[1, 2, 3]], [[]], [[9]], [["x", "y"]]], "train"),
    (unique_in_order, "unique_in_order(xs)", "returns the elements of xs without duplicates, keeping the order of first appearance", L,
     [[[1, 2, 1, 3, 2]], [[]], [[-1, -1, -1]], [["b", "a", "b"]]], "train"),
    (second_largest, "second_largest(xs)", "returns the second largest distinct number in xs, or None if there is none", L,
     [[[4, 1, 3]], [[]], [[5, 5]], [[-2, -8, -5]]], "train"),
    (running_total, "running_total(xs)", "returns a list where element i is the sum of xs[0] to xs[i]", L,
     [[[1, 2, 3]], [[]], [[-1, 1, -1]]], "train"),
    (count_occurrences, "count_occurrences(xs, target)", "returns how many times target appears in the list xs", L,
     [[[1, 2, 1, 1], 1], [[], 3], [[-1, 2], -1], [["a", "b"], "c"]], "train"),
    (merge_sorted, "merge_sorted(a, b)", "takes two sorted lists of numbers and returns one sorted list with all their elements", L,
     [[[1, 3, 5], [2, 4]], [[], []], [[-3, 0], [-5, 10]], [[1], []]], "train"),
    (chunk_list, "chunk_list(xs, size)", "splits the list xs into consecutive chunks of length size (the last chunk may be shorter) and returns the list of chunks", L,
     [[[1, 2, 3, 4, 5], 2], [[], 3], [[1, 2, 3], 3], [[-1, -2], 5]], "train"),
    (product_list, "product_list(xs)", "returns the product of the numbers in the list xs (1 for an empty list)", L,
     [[[2, 3, 4]], [[]], [[-2, 5]], [[7, 0]]], "train"),
    (average, "average(xs)", "returns the average of the numbers in xs as a float, or 0.0 for an empty list", L,
     [[[1, 2, 3, 4]], [[]], [[-3, 3]], [[5]]], "heldout"),
    (rotate_left, "rotate_left(xs, k)", "returns the list xs rotated left by k positions (k may be larger than the length)", L,
     [[[1, 2, 3, 4], 1], [[], 3], [[1, 2, 3], 5], [[-1, -2], 0]], "heldout"),
    (flatten_once, "flatten_once(xss)", "takes a list of lists and returns one list with all their elements in order", L,
     [[[[1, 2], [3]]], [[]], [[[], [-1], []]]], "heldout"),
    (index_of_max, "index_of_max(xs)", "returns the index of the first largest number in xs, or -1 if xs is empty", L,
     [[[3, 8, 2, 8]], [[]], [[-5, -1, -9]]], "heldout"),
    (pairwise_sums, "pairwise_sums(a, b)", "returns a list whose element i is a[i] + b[i], stopping at the end of the shorter list", L,
     [[[1, 2, 3], [10, 20, 30]], [[], [1, 2]], [[-1, 5], [1, -5, 9]]], "heldout"),
    # strings
    (reverse_string, "reverse_string(s)", "returns the string s reversed", S,
     [["hello"], [""], ["a"], ["ab cd"]], "train"),
    (count_vowels, "count_vowels(s)", "returns the number of vowels (a, e, i, o, u, upper or lower case) in s", S,
     [["hello"], [""], ["AEIOU xyz"], ["rhythm"]], "train"),
    (is_palindrome, "is_palindrome(s)", "returns True if s reads the same forwards and backwards, else False", S,
     [["racecar"], [""], ["ab"], ["Aa"]], "train"),
    (capitalize_words, "capitalize_words(s)", "returns s with the first letter of every space-separated word in upper case and the rest in lower case", S,
     [["hello world"], [""], ["pYTHON is fun"]], "train"),
    (remove_spaces, "remove_spaces(s)", "returns s with all space characters removed", S,
     [["a b c"], [""], ["   "], ["no_spaces"]], "train"),
    (count_words, "count_words(s)", "returns the number of words in s, where words are separated by whitespace", S,
     [["the quick brown fox"], [""], ["  spaced   out  "], ["one"]], "train"),
    (longest_word, "longest_word(s)", "returns the longest word in s (the first one if there is a tie), or an empty string if s has no words", S,
     [["a quick brown fox"], [""], ["hi yo"], ["elephant"]], "train"),
    (char_frequency, "char_frequency(s)", "returns a dict mapping each character of s to how many times it appears", S,
     [["hello"], [""], ["aAa"]], "train"),
    (initials, "initials(name)", "returns the upper-case first letter of each word in name, joined together (e.g. 'ada lovelace' -> 'AL')", S,
     [["ada lovelace"], [""], ["Grace Brewster Hopper"]], "train"),
    (replace_char, "replace_char(s, old, new)", "returns s with every occurrence of the character old replaced by the character new", S,
     [["banana", "a", "o"], ["", "a", "b"], ["xyz", "q", "r"]], "train"),
    (is_anagram, "is_anagram(a, b)", "returns True if the strings a and b contain exactly the same characters in a different order (or the same order), else False", S,
     [["listen", "silent"], ["", ""], ["abc", "abd"], ["aab", "ab"]], "train"),
    (repeat_string, "repeat_string(s, n)", "returns s repeated n times, or an empty string if n is zero or negative", S,
     [["ab", 3], ["", 5], ["x", 0], ["x", -2]], "train"),
    (swap_case, "swap_case(s)", "returns s with upper-case letters made lower case and lower-case letters made upper case", S,
     [["Hello"], [""], ["123 abC"]], "heldout"),
    (compress_string, "compress_string(s)", "returns a run-length encoding of s: each run of the same character becomes the character followed by the run length (e.g. 'aaab' -> 'a3b1')", S,
     [["aaab"], [""], ["abc"], ["zzzz"]], "heldout"),
    (starts_with_vowel, "starts_with_vowel(s)", "returns True if s starts with a vowel (a, e, i, o, u, any case), else False (also for an empty string)", S,
     [["apple"], [""], ["Egg"], ["banana"]], "heldout"),
    (count_uppercase, "count_uppercase(s)", "returns the number of upper-case letters in s", S,
     [["Hello World"], [""], ["abc"], ["ABC def G"]], "heldout"),
    (join_with_dash, "join_with_dash(words)", "returns the strings in the list words joined with '-' between them", S,
     [[["a", "b", "c"]], [[]], [["solo"]]], "heldout"),
    # conditionals
    (sign, "sign(n)", "returns 1 if n is positive, -1 if n is negative and 0 if n is zero", C,
     [[5], [-3], [0]], "train"),
    (fizzbuzz, "fizzbuzz(n)", "returns 'Fizz' if n is divisible by 3, 'Buzz' if divisible by 5, 'FizzBuzz' if divisible by both, and otherwise n as a string", C,
     [[3], [5], [15], [7], [0]], "train"),
    (is_leap_year, "is_leap_year(year)", "returns True if year is a leap year in the Gregorian calendar, else False", C,
     [[2024], [1900], [2000], [2023]], "train"),
    (grade, "grade(score)", "returns the letter grade for score: 'A' for 90 or more, 'B' for 80-89, 'C' for 70-79, 'D' for 60-69 and 'F' below 60", C,
     [[95], [80], [79], [60], [0]], "train"),
    (max_of_three, "max_of_three(a, b, c)", "returns the largest of the three numbers a, b and c", C,
     [[1, 2, 3], [-1, -5, -3], [4, 4, 2]], "train"),
    (absolute_value, "absolute_value(n)", "returns the absolute value of n without using abs()", C,
     [[-7], [0], [3]], "train"),
    (clamp, "clamp(x, low, high)", "returns x limited to the range from low to high (low if x is smaller, high if x is larger)", C,
     [[5, 0, 10], [-5, 0, 10], [15, 0, 10], [-3, -3, -1]], "train"),
    (is_even, "is_even(n)", "returns True if the integer n is even, else False", C,
     [[4], [7], [0], [-2]], "train"),
    (triangle_type, "triangle_type(a, b, c)", "returns 'equilateral' if all three sides are equal, 'isosceles' if exactly two are equal, and 'scalene' otherwise", C,
     [[3, 3, 3], [3, 3, 5], [3, 4, 5], [5, 3, 5]], "heldout"),
    (bigger_length, "bigger_length(a, b)", "returns whichever of the strings a and b is longer (a if they have the same length)", C,
     [["hi", "hello"], ["", ""], ["abc", "xy"]], "heldout"),
    (ticket_price, "ticket_price(age)", "returns the ticket price for a person of the given age: 5 for children under 12, 7 for people aged 65 or more, and 10 otherwise", C,
     [[5], [12], [64], [65], [0]], "heldout"),
    # loops
    (factorial, "factorial(n)", "returns n! (the product 1 * 2 * ... * n) for n >= 0, with factorial(0) == 1", W,
     [[5], [0], [1], [10]], "train"),
    (fibonacci, "fibonacci(n)", "returns the n-th Fibonacci number, where fibonacci(0) == 0 and fibonacci(1) == 1", W,
     [[0], [1], [10], [20]], "train"),
    (sum_to_n, "sum_to_n(n)", "returns 1 + 2 + ... + n, or 0 if n is zero or negative", W,
     [[5], [0], [-3], [100]], "train"),
    (count_digits, "count_digits(n)", "returns the number of digits in the integer n (ignoring a minus sign)", W,
     [[12345], [0], [-907]], "train"),
    (sum_of_digits, "sum_of_digits(n)", "returns the sum of the digits of the integer n (ignoring a minus sign)", W,
     [[123], [0], [-45], [9999]], "train"),
    (is_prime, "is_prime(n)", "returns True if n is a prime number, else False (numbers below 2 are not prime)", W,
     [[7], [1], [0], [-5], [21], [2]], "train"),
    (power, "power(base, exp)", "returns base raised to the non-negative integer exp, using a loop instead of **", W,
     [[2, 10], [5, 0], [-3, 3]], "train"),
    (multiplication_row, "multiplication_row(n, k)", "returns the list [n*1, n*2, ..., n*k] (empty if k is 0)", W,
     [[3, 4], [7, 0], [-2, 3]], "train"),
    (gcd, "gcd(a, b)", "returns the greatest common divisor of the integers a and b (gcd(0, 0) == 0, the result is never negative)", W,
     [[12, 18], [0, 5], [-4, 6], [0, 0]], "train"),
    (collatz_steps, "collatz_steps(n)", "returns how many steps the Collatz rule (n -> n/2 if n is even, else 3n+1) takes to reach 1 from the positive integer n", W,
     [[1], [6], [27]], "heldout"),
    (count_down, "count_down(n)", "returns the list [n, n-1, ..., 1, 0] for n >= 0", W,
     [[3], [0], [5]], "heldout"),
    (primes_up_to, "primes_up_to(n)", "returns the list of all prime numbers less than or equal to n", W,
     [[10], [1], [2], [-4]], "heldout"),
    (reverse_number, "reverse_number(n)", "returns the integer n with its digits reversed, keeping the sign (e.g. -123 -> -321, 120 -> 21)", W,
     [[123], [0], [-45], [120]], "heldout"),
]


def build_rows():
    rows = {"train": [], "heldout": []}
    for fn, signature, description, category, arg_lists, split in TASKS:
        name = fn.__name__
        assert signature.startswith(name + "("), signature
        tests = [{"args": args, "expected": fn(*json.loads(json.dumps(args)))} for args in arg_lists]
        tests = json.loads(json.dumps(tests))  # exactly what a reader of the JSONL file will see
        rows[split].append({
            "uid": f"code-{name}",
            "prompt": f"Write a Python function `{signature}` that {description}.",
            "entry_point": name,
            "tests": tests,
            "category": category,
        })
    return rows


def reference_source(fn) -> str:
    """The reference as a standalone program (is_prime's helper included where it is used)."""
    source = textwrap.dedent(inspect.getsource(fn))
    if fn is primes_up_to:
        source = textwrap.dedent(inspect.getsource(is_prime)) + "\n\n" + source
    return source


def verify(rows) -> None:
    """Run every reference solution through the sandbox, as if it were a model's completion."""
    by_name = {fn.__name__: fn for fn, *_ in TASKS}
    all_rows = rows["train"] + rows["heldout"]
    jobs = [(reference_source(by_name[r["entry_point"]]), r["entry_point"], r["tests"]) for r in all_rows]
    results = run_batch(jobs, timeout=10)
    bad = [(r["uid"], res.message) for r, res in zip(all_rows, results) if not res.all_passed]
    if bad:
        for uid, message in bad:
            print(f"FAILED {uid}: {message}", file=sys.stderr)
        raise SystemExit(f"{len(bad)} task(s) do not pass with their reference solution")


def main() -> None:
    rows = build_rows()
    uids = [r["uid"] for split in rows.values() for r in split]
    assert len(uids) == len(set(uids)), "duplicate uids"
    assert len(rows["train"]) >= 40 and len(rows["heldout"]) >= 15, {k: len(v) for k, v in rows.items()}
    assert all(len(r["tests"]) >= 3 for split in rows.values() for r in split)
    verify(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        with open(OUT / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in items:
                f.write(json.dumps(row) + "\n")
        cats = {}
        for row in items:
            cats[row["category"]] = cats.get(row["category"], 0) + 1
        print(f"{split}: {len(items)} tasks {cats} -> {OUT / (split + '.jsonl')}")
    print("All reference solutions pass their tests in the sandbox.")


if __name__ == "__main__":
    main()
