"""Deterministic synthetic corpus in the source schemas of the real corpus.

Writes Alpaca-style English tasks (``instruction``/``input``/``output``), CodeExercise-style
``chat_rounds`` rows, and Russian ``вопрос``/``ответ`` rows, with code blocks, realistic lengths,
planted exact duplicates and planted near-duplicates (a few words changed), all from a seed.

    python benchmarks/synthetic_corpus.py OUT_DIR --rows 65000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Snippet:
    name: str
    en: str  # what the function does, English, lower case, no final period
    ru: str  # the same in Russian
    code: str


SNIPPETS = [
    Snippet(
        "is_prime",
        "checks whether a number is prime",
        "проверяет, является ли число простым",
        "def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n"
        "        if n % i == 0:\n            return False\n        i += 1\n    return True",
    ),
    Snippet(
        "reverse_words",
        "reverses the order of words in a sentence",
        "переворачивает порядок слов в предложении",
        'def reverse_words(sentence: str) -> str:\n    return " ".join(reversed(sentence.split()))',
    ),
    Snippet(
        "flatten",
        "flattens a nested list of any depth",
        "разворачивает вложенный список любой глубины",
        "def flatten(items):\n    result = []\n    for item in items:\n        if isinstance(item, list):\n"
        "            result.extend(flatten(item))\n        else:\n            result.append(item)\n    return result",
    ),
    Snippet(
        "word_count",
        "counts how many times each word occurs in a text",
        "считает, сколько раз каждое слово встречается в тексте",
        "from collections import Counter\n\n\ndef word_count(text: str) -> dict[str, int]:\n"
        "    return dict(Counter(text.lower().split()))",
    ),
    Snippet(
        "fibonacci",
        "returns the first n Fibonacci numbers",
        "возвращает первые n чисел Фибоначчи",
        "def fibonacci(n: int) -> list[int]:\n    seq = [0, 1]\n    while len(seq) < n:\n"
        "        seq.append(seq[-1] + seq[-2])\n    return seq[:n]",
    ),
    Snippet(
        "binary_search",
        "finds the index of a value in a sorted list with binary search",
        "находит индекс значения в отсортированном списке двоичным поиском",
        "def binary_search(values, target):\n    lo, hi = 0, len(values) - 1\n    while lo <= hi:\n"
        "        mid = (lo + hi) // 2\n        if values[mid] == target:\n            return mid\n"
        "        if values[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n"
        "    return -1",
    ),
    Snippet(
        "read_csv_rows",
        "reads a CSV file and returns its rows as dictionaries",
        "читает CSV-файл и возвращает строки как словари",
        'import csv\n\n\ndef read_csv_rows(path):\n    with open(path, newline="", encoding="utf-8") as fh:\n'
        "        return list(csv.DictReader(fh))",
    ),
    Snippet(
        "merge_dicts",
        "merges two dictionaries, summing the values of shared keys",
        "объединяет два словаря, складывая значения общих ключей",
        "def merge_dicts(a: dict, b: dict) -> dict:\n    merged = dict(a)\n    for key, value in b.items():\n"
        "        merged[key] = merged.get(key, 0) + value\n    return merged",
    ),
    Snippet(
        "is_palindrome",
        "checks whether a string is a palindrome, ignoring case and spaces",
        "проверяет, является ли строка палиндромом без учёта регистра и пробелов",
        'def is_palindrome(text: str) -> bool:\n    cleaned = "".join(ch.lower() for ch in text if ch.isalnum())\n'
        "    return cleaned == cleaned[::-1]",
    ),
    Snippet(
        "chunked",
        "splits a list into chunks of a given size",
        "разбивает список на части заданного размера",
        "def chunked(items, size):\n    return [items[i:i + size] for i in range(0, len(items), size)]",
    ),
    Snippet(
        "factorial",
        "computes the factorial of a number recursively",
        "рекурсивно вычисляет факториал числа",
        "def factorial(n: int) -> int:\n    if n <= 1:\n        return 1\n    return n * factorial(n - 1)",
    ),
    Snippet(
        "Stack",
        "implements a stack class with push, pop and peek methods",
        "реализует класс стека с методами push, pop и peek",
        "class Stack:\n    def __init__(self):\n        self._items = []\n\n    def push(self, item):\n"
        "        self._items.append(item)\n\n    def pop(self):\n        return self._items.pop()\n\n"
        "    def peek(self):\n        return self._items[-1]\n\n    def __len__(self):\n        return len(self._items)",
    ),
    Snippet(
        "unique_sorted",
        "removes duplicates from a list and returns it sorted",
        "удаляет дубликаты из списка и возвращает его отсортированным",
        "def unique_sorted(values):\n    return sorted(set(values))",
    ),
    Snippet(
        "celsius_to_fahrenheit",
        "converts a temperature from Celsius to Fahrenheit",
        "переводит температуру из градусов Цельсия в градусы Фаренгейта",
        "def celsius_to_fahrenheit(celsius: float) -> float:\n    return celsius * 9 / 5 + 32",
    ),
    Snippet(
        "count_vowels",
        "counts the vowels in a string",
        "считает гласные в строке",
        'def count_vowels(text: str) -> int:\n    return sum(1 for ch in text.lower() if ch in "aeiou")',
    ),
    Snippet(
        "matrix_transpose",
        "transposes a matrix given as a list of lists",
        "транспонирует матрицу, заданную списком списков",
        "def matrix_transpose(matrix):\n    return [list(row) for row in zip(*matrix)]",
    ),
    Snippet(
        "gcd",
        "finds the greatest common divisor of two numbers with Euclid's algorithm",
        "находит наибольший общий делитель двух чисел алгоритмом Евклида",
        "def gcd(a: int, b: int) -> int:\n    while b:\n        a, b = b, a % b\n    return abs(a)",
    ),
    Snippet(
        "fetch_json",
        "downloads a JSON document from a URL with requests",
        "скачивает JSON-документ по URL с помощью requests",
        "import requests\n\n\ndef fetch_json(url: str, timeout: float = 10.0):\n"
        "    response = requests.get(url, timeout=timeout)\n    response.raise_for_status()\n    return response.json()",
    ),
    Snippet(
        "group_by_length",
        "groups words by their length",
        "группирует слова по их длине",
        "from collections import defaultdict\n\n\ndef group_by_length(words):\n    groups = defaultdict(list)\n"
        "    for word in words:\n        groups[len(word)].append(word)\n    return dict(groups)",
    ),
    Snippet(
        "bubble_sort",
        "sorts a list with bubble sort",
        "сортирует список пузырьковой сортировкой",
        "def bubble_sort(values):\n    values = list(values)\n    for i in range(len(values)):\n"
        "        for j in range(len(values) - 1 - i):\n            if values[j] > values[j + 1]:\n"
        "                values[j], values[j + 1] = values[j + 1], values[j]\n    return values",
    ),
    Snippet(
        "second_largest",
        "returns the second largest number in a list",
        "возвращает второе по величине число в списке",
        "def second_largest(values):\n    unique = sorted(set(values))\n    if len(unique) < 2:\n"
        '        raise ValueError("need at least two distinct values")\n    return unique[-2]',
    ),
    Snippet(
        "parse_log_line",
        "parses a log line of the form 'LEVEL: message' into a tuple",
        "разбирает строку журнала вида 'LEVEL: message' в кортеж",
        'import re\n\nLOG_LINE = re.compile(r"^(?P<level>[A-Z]+):\\s*(?P<message>.*)$")\n\n\n'
        "def parse_log_line(line: str):\n    match = LOG_LINE.match(line)\n    if match is None:\n"
        '        return None\n    return match["level"], match["message"]',
    ),
    Snippet(
        "running_average",
        "computes the running average of a sequence of numbers",
        "вычисляет скользящее среднее последовательности чисел",
        "def running_average(values):\n    total = 0.0\n    averages = []\n    for i, value in enumerate(values, 1):\n"
        "        total += value\n        averages.append(total / i)\n    return averages",
    ),
    Snippet(
        "snake_to_camel",
        "converts a snake_case identifier to camelCase",
        "преобразует идентификатор из snake_case в camelCase",
        'def snake_to_camel(name: str) -> str:\n    first, *rest = name.split("_")\n'
        '    return first + "".join(part.title() for part in rest)',
    ),
    Snippet(
        "LinkedList",
        "implements a singly linked list with append and iteration",
        "реализует односвязный список с добавлением и обходом",
        "class Node:\n    def __init__(self, value, next_node=None):\n        self.value = value\n"
        "        self.next = next_node\n\n\nclass LinkedList:\n    def __init__(self):\n        self.head = None\n\n"
        "    def append(self, value):\n        node = Node(value)\n        if self.head is None:\n"
        "            self.head = node\n            return\n        current = self.head\n        while current.next:\n"
        "            current = current.next\n        current.next = node\n\n    def __iter__(self):\n"
        "        current = self.head\n        while current:\n            yield current.value\n"
        "            current = current.next",
    ),
]

EN_OPENERS = [
    "Write a Python function that {en}.",
    "Create a Python program that {en}.",
    "Implement a function in Python which {en}.",
    "How can I write Python code that {en}?",
    "Develop a Python script that {en}. Explain how it works.",
]
EN_EXPLANATIONS = [
    "The function `{name}` {en}. It runs in linear time for typical inputs and uses only the standard library.",
    "Here `{name}` {en}; call it with your own data to check the result.",
    "This solution keeps the logic small: `{name}` {en} and returns the result instead of printing it.",
]
RU_QUESTIONS = [
    "Как написать функцию на Python, которая {ru}?",
    "Подскажите, как на Python сделать функцию, которая {ru}. Пробовал сам, но получается громоздко.",
    "Нужна функция, которая {ru}. Как это лучше реализовать?",
]
RU_ANSWERS = [
    "Можно так:\n\n```python\n{code}\n```\n\nФункция `{name}` {ru}. Ёмко и без лишних зависимостей.",
    "Вот простой вариант:\n\n```python\n{code}\n```\n\nЗдесь `{name}` {ru}; проверьте на своих данных.",
]
FILLER_EN = (
    "Make sure the code handles edge cases such as empty input and invalid values, and add type hints "
    "where they help the reader. Include a short example of how to call it."
)
FILLER_RU = (
    "Обратите внимание на крайние случаи: пустой ввод и некорректные значения. Й и ё сохраняются как есть."
)


def alpaca_row(rng: random.Random, s: Snippet, pad: int) -> dict:
    instruction = rng.choice(EN_OPENERS).format(en=s.en)
    instruction += f" Test it with {rng.randint(3, 999_999)} random inputs."
    if pad:
        instruction += " " + " ".join([FILLER_EN] * pad)
    example = rng.choice(["", "", f"{s.name}([3, 1, 2])", "input: 'hello world'"])
    if rng.random() < 0.2:
        output = s.code  # bare code, no fence: the real Vezora set has many of these
    else:
        output = f"```python\n{s.code}\n```\n\n" + rng.choice(EN_EXPLANATIONS).format(name=s.name, en=s.en)
    return {"instruction": instruction, "input": example, "output": output}


def chat_rounds_row(rng: random.Random, s: Snippet, idx: int) -> dict:
    doc = f'    """{s.en.capitalize()}."""\n'
    first, _, rest = s.code.partition("\n")
    code = f"{first}\n{doc}{rest}" if first.startswith("def ") else s.code
    return {
        "data_name": "code_exercise",
        "id": idx,
        "chat_rounds": [
            {
                "role": "human",
                "content": f"Write a Python function that {s.en}, with a detailed docstring. "
                f"It will be called about {rng.randint(3, 999_999)} times.",
                "chat_round_id": 0,
            },
            {
                "role": "bot",
                "content": f"Sure. Here is the implementation:\n\n```python\n{code}\n```",
                "chat_round_id": 1,
            },
        ],
    }


def ru_row(rng: random.Random, s: Snippet, pad: int) -> dict:
    question = rng.choice(RU_QUESTIONS).format(ru=s.ru)
    question += f" Данных примерно {rng.randint(3, 999_999)} строк."
    if pad:
        question += " " + " ".join([FILLER_RU] * pad)
    answer = rng.choice(RU_ANSWERS).format(code=s.code, name=s.name, ru=s.ru)
    return {"вопрос": question, "ответ": answer}


def _perturb(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 40)):
        i = rng.randrange(1, len(words))
        words[i] = words[i] + rng.choice(["", "s", "ly"])
    return " ".join(words)


def generate(
    rows: int, seed: int = 0, dup_rate: float = 0.02, near_dup_rate: float = 0.03
) -> dict[str, list]:
    """Rows split 35/42/23 between alpaca, chat_rounds and Russian Q&A, like the real corpus."""
    rng = random.Random(seed)
    shares = {"alpaca": 0.35, "chat_rounds": 0.42, "ru_qa": 0.23}
    out: dict[str, list] = {k: [] for k in shares}
    for kind, share in shares.items():
        n = max(1, round(rows * share))
        made = out[kind]
        while len(made) < n:
            r = rng.random()
            if made and r < dup_rate:
                made.append(json.loads(json.dumps(rng.choice(made))))
                continue
            if made and r < dup_rate + near_dup_rate and kind != "chat_rounds":
                base = dict(rng.choice(made))
                key = "instruction" if kind == "alpaca" else "вопрос"
                base[key] = _perturb(rng, base[key])
                made.append(base)
                continue
            s = rng.choice(SNIPPETS)
            pad = rng.choice([0, 1, 2, 3, 5])
            if kind == "alpaca":
                made.append(alpaca_row(rng, s, pad))
            elif kind == "chat_rounds":
                made.append(chat_rounds_row(rng, s, len(made)))
            else:
                made.append(ru_row(rng, s, pad))
    return out


def write_corpus(out_dir: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = generate(rows, seed)
    paths = {}
    for kind, records in corpus.items():
        path = out_dir / f"{kind}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths[kind] = path
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--rows", type=int, default=65_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for kind, path in write_corpus(args.out_dir, args.rows, args.seed).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
