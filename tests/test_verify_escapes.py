"""Each kind of code that once passed the verifier changed, spoiled exactly that way.

The worst-case model is a transliterator: every Latin letter it is sent becomes Cyrillic. It is a
legitimate adversary (it keeps placeholders and line structure, as a well-behaved model does) and
it changes everything it touches, so whatever it is sent shows up in the output. Each case below
spoils one thing, the way the escape was seen on real rows, and the verifier must name the line;
the same turn with only its prose spoiled must pass, so no case passes by rejecting everything.
"""

from __future__ import annotations

import re

import pytest

from dataset_builder.translation.turns import Turn
from dataset_builder.translation.verify import verify_turn

_LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CYRILLIC = "абцдефгхийклмнопqрстуввхызАБЦДЕФГХИЙКЛМНОПQРСТУВВХЫЗ"
_TABLE = str.maketrans(_LATIN, _CYRILLIC)


def transliterate(text: str) -> str:
    return text.translate(_TABLE)


def translate_words(text: str) -> str:
    """A well-behaved model: the plain words change, everything else stays."""
    return re.sub(r"(?<!\S)[A-Za-z][a-z]*(?=[.,:;!?]?(?:\s|$))", lambda m: transliterate(m.group(0)), text)


def spoil(text: str, part: str, replacement: str | None = None) -> str:
    assert part in text, part
    return text.replace(part, transliterate(part) if replacement is None else replacement, 1)


_PYTHON_THEN_OUTPUT = "# Enumerate the elements\nfruits = ['apple', 'mango']\nfor num, element in enumerate(fruits):\n    print(num, element)\n\n## Output:\n0 apple\n1 mango"
_HTML_PAGE = '<html>\n  <body>\n    <div class="column">\n      Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n    </div>\n  </body>\n</html>'
_BASIC_MODULE = "Module Module1\n Sub Main()\n Dim n As Integer = 10\n For i As Integer = 2 To n Step 2\n Console.WriteLine(i)\n Next\n End Sub\nEnd Module"
_PSEUDOCODE = "SET cur_char to empty\n        FOR i=0 to length of text\n            IF text[i] is same as cur_char\n                start_idx = i\n            ELSE\n               cur_char = text[i]\n        DELETE character from start_idx + 1 to text length"
_ERROR_AFTER_COLON = "Describe how to fix this PHP syntax error: Parse error: syntax error, unexpected ';', expecting ',' or ')' in test.php on line 3."
_OUTPUT_AFTER_SENTENCE = "The script prints a message for each iteration. Expected output:\n\nHello, this is iteration number 1\nHello, this is iteration number 2"
_NESTED_QUOTATION = "4. Open a new file using 'with open(name, 'w', newline='') as out'."
_DOUBLE_BACKTICKS = "Translate this Python code to Java:``points = [{'x': 1, 'y': 2}, {'x': 3, 'y': 4}]; below = lambda p, m, b: p['y'] < m * p['x'] + b``"
_STATEMENTS_WITH_REMARKS = "Explanation:\n1. int x = 10; (x is assigned the value 10)\n2. int y = x * 2; (y is assigned the value of x multiplied by 2, i.e., 20)"
_LONG_TOKEN = 'Create a regex expression to match "' + "abb" * 32 + '".'
_HTML_TEXT_RUN = "Update the page.\n  <p>\n  Welcome to our store, we sell fresh fruit.\n  Come back again soon for more great deals.\n  </p>"
_PHP_WARNING = "PHP Warning: Undefined variable $total in /var/www/cart.php on line 3"
_POSTGRES_ERROR = "ERROR: permission denied for table users"

# (name, turn, the part the model changed, what it became (None: transliterated), the row's other
#  turn, a prose part of the turn whose translation must pass, translate_comments)
ESCAPES = [
    ("trailing-comment", "Start the server:\n\nserver.listen('8080'); // The web server is now listening on port 8080",
     "server.listen('8080'); // The web server is now listening on port 8080",
     "server.listen('8080') // Веб-сервер теперь слушает порт 8080", "", "Start the server:", False),
    ("trailing-comment-only", "Start it.\n\nserver.listen('8080'); // The web server is now listening",
     "The web server is now listening", None, "", "Start it.", False),
    ("comment-output", "function show(x) {\n  console.log(x);\n}\nshow(5);\n// Output:\n// 5",
     "// Output:", None, "", None, False),
    ("comment-implementation", "Here it is.\n\n// Implementation\n\nfunction add(a, b) {\n  return a + b;\n}",
     "// Implementation", None, "", "Here it is.", False),
    ("jsdoc", "/**\n * Function to compare two strings and return the longer one\n * @param {string} a\n */\nfunction longer(a, b) {\n  return a.length >= b.length ? a : b;\n}",
     " * Function to compare two strings and return the longer one", None, "", None, False),
    ("java-comment", "public class Main {\n    public static void main(String[] args) {\n        // Print the greeting to the console\n        System.out.println(\"Hi\");\n    }\n}",
     "        // Print the greeting to the console", None, "", None, False),
    ("csharp-comment", "Here is the C# version.\n\n// Doubles the number that it is given\n\nstatic int Twice(int x) => x * 2;",
     "// Doubles the number that it is given", None, "", "Here is the C# version.", False),
    ("docstring-not-parsing", "def double(x):\n  \"\"\"Return the double of the given number.\"\"\"\n    return x * 2",
     "Return the double of the given number.", None, "", None, False),
    ("docstring-in-code-input", "Explain what this function does.\ndef product(nums):\n    \"\"\"Find product of all numbers in the list\"\"\"\n    result = 1\n    for n in nums:\n        result *= n\n    return result",
     "Find product of all numbers in the list", None, "", "Explain what this function does.", False),
    ("program-output-answer", "A\nB\nC\nD\nE", "A\nB", None, "What will this code output?\nfor c in 'ABCDE': print(c)", None, False),
    ("data-label-table", "Write a SQL query that lists the customers of one state.\nTable: customer\nState: Texas",
     "Table: customer", None, "SELECT name FROM customer WHERE state = 'Texas';", "Write a SQL query that lists the customers of one state.", False),
    ("data-label-value", "Write a SQL query that lists the customers of one state.\nTable: customer\nState: Texas",
     "State: Texas", None, "SELECT name FROM customer WHERE state = 'Texas';", "Write a SQL query that lists the customers of one state.", False),
    ("increment-with-comment", "Fix the loop.\n\nwhile (i < 10) {\n        i++;  // Include this line to fix the infinite loop\n}",
     "i++;", None, "", "Fix the loop.", False),
    ("sql-lower-case", "Here is the query you need.\n\nselect name from users where age is not null order by name",
     "select name from users where age is not null order by name", None, "", "Here is the query you need.", False),
    ("quoted-one-liner", "Count the vowels in this string.\n\"The quick brown fox jumps over the lazy dog while the old cat sleeps under the warm sun\"",
     "The quick brown fox jumps over the lazy dog while the old cat sleeps under the warm sun", None, "", "Count the vowels in this string.", False),
    ("list-item-code", "The steps are:\n1. int x = 5;\n2. int y = x * 2; This line doubles the value of x.", "int y", None, "", "The steps are:", False),
    ("std-map-in-prose", "You can count the characters with a std::map in C++.", "std::map", None, "", None, False),
    ("generic-in-prose", "In Java, store the counts in a Map<Character, Integer> instead.", "Map<Character, Integer>", None, "", None, False),
    ("yaml", "Here is the job.\n\njobs:\n  build:\n    name: my build job\n    runs-on: ubuntu-latest",
     "name: my build job", None, "", "Here is the job.", False),
    ("js-object-input", "Sort these people by age.\n{ name: 'John', age: 30, city: 'New York' }",
     "{ name: 'John', age", "{ наме: 'John', аге", "", "Sort these people by age.", False),
    ("table-schema", "Write a query that finds the highest salary.\nemployees (id INT, name VARCHAR(50), salary DECIMAL)",
     "employees (id INT, name VARCHAR(50), salary DECIMAL)", None, "", "Write a query that finds the highest salary.", False),
    ("include-in-numbered-explanation", "1. #include <iostream>: This line includes the input and output stream library.",
     "#include", None, "", None, False),
    ("increment-in-prose", "The loop ends because x++ runs after every pass.", "x++", None, "", None, False),
    ("comparison-in-prose", "The loop runs while i<nums.length holds.", "i<nums.length", "и<nums.length", "", None, False),
    ("tag-in-prose", "Every page starts with the <html> tag.", "<html>", None, "", None, False),
    ("comment-code-part-with-translated-comments", "Start it.\n\nserver.listen('8080'); // The web server is now listening",
     "server.listen('8080');", None, "", "Start it.", True),
    # Found on rows held out from the data the rules were written on (an older release of the set):
    ("comment-header-after-python", _PYTHON_THEN_OUTPUT, "## Output:", "## Output", "", None, False),
    ("html-element-text", _HTML_PAGE, "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", None, "", None, False),
    ("basic-statement-in-block", _BASIC_MODULE, "For i As Integer = 2 To n Step 2", None, "", None, False),
    ("pseudocode-step", _PSEUDOCODE, "IF text[i] is same as cur_char", None, "", None, False),
    ("long-quoted-token", _LONG_TOKEN, '"' + "abb" * 32 + '".', '"' + "abb" * 32, "", None, False),
    ("nested-quotation-with-code", _NESTED_QUOTATION, "'with open(name, 'w', newline='') as out'",
     "as out' 'with open(name, 'w', newline='')", "", None, False),
    ("double-backticks-after-colon", _DOUBLE_BACKTICKS, "[{'x': 1", "[{'x' 1", "", None, False),
    ("statement-with-remark", _STATEMENTS_WITH_REMARKS, "i.e., 20)", "i.e., 20", "", None, False),
    ("error-message-after-colon", _ERROR_AFTER_COLON, "expecting", None, "", None, False),
    ("output-after-a-sentence-header", _OUTPUT_AFTER_SENTENCE, "Hello, this is iteration number 2", None, "", None, False),
    ("triple-quotes-in-prose", "Use triple single quotes \'\'\' or triple double quotes \"\"\" for the docstring.",
     "\'\'\'", "\u2018\u2019\u2019", "", None, False),
]  # fmt: skip

# Where the held-out escapes stood: each line is code by its place in a block, not by its looks.
NESTED_CODE = [
    (_PYTHON_THEN_OUTPUT, "## Output:"),
    (_HTML_PAGE, "Lorem ipsum dolor sit amet, consectetur adipiscing elit."),
    (_BASIC_MODULE, "For i As Integer = 2 To n Step 2"),
    (_PSEUDOCODE, "IF text[i] is same as cur_char"),
    (_PSEUDOCODE, "DELETE character from start_idx + 1 to text length"),
    (_LONG_TOKEN, '"' + "abb" * 32 + '"'),
    (
        _ERROR_AFTER_COLON,
        "Parse error: syntax error, unexpected ';', expecting ',' or ')' in test.php on line 3.",
    ),
    (_OUTPUT_AFTER_SENTENCE, "Hello, this is iteration number 1\nHello, this is iteration number 2"),
    (_NESTED_QUOTATION, "'with open(name, 'w', newline='') as out'"),
    (_DOUBLE_BACKTICKS, _DOUBLE_BACKTICKS[_DOUBLE_BACKTICKS.index("``") :]),
    (_STATEMENTS_WITH_REMARKS, "(y is assigned the value of x multiplied by 2, i.e., 20)"),
    (
        _HTML_TEXT_RUN,
        "  Welcome to our store, we sell fresh fruit.\n  Come back again soon for more great deals.",
    ),
    (_PHP_WARNING, _PHP_WARNING),
    (_POSTGRES_ERROR, _POSTGRES_ERROR),
]


def _drop_punctuation_and_reorder(sentence: str) -> str:
    return " ".join(reversed(re.sub(r"[\s.,;:!?)\]}'\"]+$", "", sentence).split()))


@pytest.mark.parametrize(("turn", "code"), NESTED_CODE)
def test_code_survives_a_model_that_drops_punctuation_and_reorders(turn: str, code: str) -> None:
    """Through the stage's own segmenting, placeholders and reassembly: whatever the model does to
    what it is sent, the code comes out whole."""
    turn_ = Turn(turn, False, "en")
    out, _ = turn_.assemble({s: _drop_punctuation_and_reorder(s) for s in turn_.sentences()}, {})
    assert code in out, out


@pytest.mark.parametrize(
    "line",
    [
        "The error: it is in the loop.",
        "This warning: the file is large.",
        "Main error: the variable is never set before it is used.",
        "Another error: the loop never stops.",
        "Error handling: wrap the call in a try block so the program does not crash.",
        "Exception handling: the except block catches what the call raises.",
        "Terror: the film was scary.",
        "Warning:\nNever run this script as the root user.",
    ],
)
def test_a_sentence_that_names_an_error_is_still_prose(line: str) -> None:
    assert Turn(line, False, "en").sentences()
    assert verify_turn(line, translate_words(line)) is None


def test_a_block_text_of_several_lines_sent_by_neither_side() -> None:
    """What the segmenter translates around a run of an element's lines, the verifier accepts."""
    turn = Turn(_HTML_TEXT_RUN, False, "en")
    out, _ = turn.assemble({s: translate_words(s) for s in turn.sentences()}, {})
    assert out != _HTML_TEXT_RUN
    assert verify_turn(_HTML_TEXT_RUN, out) is None


def test_an_indented_sentence_under_a_lone_label_is_still_prose() -> None:
    """A value kept as code ("Step 1: Install Python") opens no block: the sentence under it is
    translated."""
    turn = "Step 1: Install Python\n    Download the installer from the website and run it."
    assert any("Download the installer" in s for s in Turn(turn, False, "en").sentences())


@pytest.mark.parametrize(
    ("name", "turn", "part", "becomes", "context", "prose", "comments"), ESCAPES, ids=[c[0] for c in ESCAPES]
)
def test_the_verifier_catches_each_escape(
    name: str, turn: str, part: str, becomes: str | None, context: str, prose: str | None, comments: bool
) -> None:
    spoiled = spoil(turn, part, becomes)
    found = verify_turn(turn, spoiled, translate_comments=comments, context=context)
    assert found is not None, f"{name}: {part!r} changed and passed"
    line = turn[: turn.index(part)].count("\n") + 1
    assert found.startswith(f"line {line}: "), found  # the detail names the line and the rule
    if prose is not None:
        assert (
            verify_turn(
                turn, spoil(turn, prose, translate_words(prose)), translate_comments=comments, context=context
            )
            is None
        )


def test_translated_comments_may_change_behind_their_marker() -> None:
    turn = "Start it.\n\nserver.listen('8080'); // The web server is now listening"
    spoiled = spoil(turn, "The web server is now listening")
    assert verify_turn(turn, spoiled, translate_comments=True) is None
    jsdoc = "/**\n * Compare two strings\n */\nfunction f(a) {\n  return a;\n}"
    assert verify_turn(jsdoc, spoil(jsdoc, "Compare two strings"), translate_comments=True) is None
    assert verify_turn(jsdoc, spoil(jsdoc, " * Compare", " Compare"), translate_comments=True) is not None


# Rows with no code: a worst-case model that changes every letter it is sent must still get them
# published, through the stage's own segmenting, placeholders and reassembly.
PROSE_ROWS = [
    "Bake the cookies for twelve minutes.\n\nClassic Chocolate Chip Cookies\n\nIngredients:\n- 2 cups flour\n- 1 cup sugar\n- 2 eggs\n\nBake for 12 minutes.",
    "Fill in the blank: The capital of France is ___.",
    "Send it to this address.\nJohn Smith\n123 Main Street, Springfield, IL 62704\nUnited States",
    "Roses are red,\nviolets are blue,\nsugar is sweet,\nand so are you.",
    "Wrap the title in <b> tags to make it bold, e.g. <b>Title</b>.",
    "Top three reasons:\n1. speed\n2. safety\n3. cost",
    "What is the difference between a list and a tuple?",
    "Introduction\n\nThis guide explains how to plan a trip. It covers budgets, tickets and packing.",
    "Write a C++ program that reads a .txt file; it's JavaScript's turn next, in the 12-hour format.",
]


@pytest.mark.parametrize("text", PROSE_ROWS)
def test_prose_is_not_thrown_away(text: str) -> None:
    turn = Turn(text, False, "en")
    translated, _ = turn.assemble({s: transliterate(s) for s in turn.sentences()}, {})
    assert translated != text
    assert verify_turn(text, translated) is None


# (instruction, task input): the input is the data the task works on, sentences included (the
# string a program counts the words of, which its answer quotes).
TASK_INPUTS = [
    ("Check whether this word is a palindrome.", "racecar"),
    ("Check if these two words are anagrams.", "listen, silent"),
    ("Reverse this string.", "Hello, World!"),
    ("Parse this record into a dictionary.", "John Doe, 30"),
    ("Write a query that lists the oldest employee.", "employees (id, name, age)"),
    ("Count the words in this text.", "The quick brown fox jumps over the lazy dog."),
    ("Reverse the order of the words.", "Hello, how are you today?"),
    ("Count the vowels of the sentence.", "Sentence: Programming is fun!"),
]


@pytest.mark.parametrize(("instruction", "data"), TASK_INPUTS)
def test_a_task_input_stays_data(instruction: str, data: str) -> None:
    """The task's input is the last line of the user turn: changed, the turn is rejected, even when
    the input reads as sentences; the instruction above it may always be translated."""
    turn = f"{instruction}\n{data}"
    found = verify_turn(turn, f"{instruction}\n{transliterate(data)}", data_lines=1)
    assert found is not None and "line 2: task input changed" in found, found
    assert verify_turn(turn, f"{transliterate(instruction)}\n{data}", data_lines=1) is None


@pytest.mark.parametrize(("instruction", "data"), TASK_INPUTS)
def test_the_stage_never_sends_a_task_input_to_the_translator(instruction: str, data: str) -> None:
    turn = Turn(f"{instruction}\n{data}", False, "en", data_lines=1)
    sent = " ".join(turn.sentences())
    assert data not in sent
    assert instruction in sent


@pytest.mark.parametrize("answer", ["True", "False", "false", "average", "True\nFalse"])
def test_a_value_answer_is_kept(answer: str) -> None:
    found = verify_turn(answer, transliterate(answer))
    assert found is not None and "value answer changed" in found
    assert Turn(answer, False, "en").sentences() == []


@pytest.mark.parametrize("answer", ["Yes.", "Bubble sort is the one.", "It returns True."])
def test_a_sentence_answer_is_translated(answer: str) -> None:
    assert Turn(answer, False, "en").sentences() != []


# A line of one or two words with no sentence end, colon or list mark is a value, a name or a line
# a program prints: (turn, the short line in it).
SHORT_PHRASES = [
    ("Hello World", "Hello World"),
    ("The result is printed.\n\nhello world again", "hello world again"),
    ("Here is an example of the output: Hello World", "Hello World"),
    ("Abstract Factory", "Abstract Factory"),
    ("The pattern used here is:\n\nAbstract Factory", "Abstract Factory"),
    ("It prints two lines.\n\nHello World\nGoodbye World", "Goodbye World"),
    ("Bubble sort", "Bubble sort"),
]


@pytest.mark.parametrize(("turn", "short"), SHORT_PHRASES)
def test_a_short_phrase_is_kept(turn: str, short: str) -> None:
    found = verify_turn(turn, spoil(turn, short))
    line = turn[: turn.index(short)].count("\n") + 1
    assert found is not None and found.startswith(f"line {line}: "), found
    assert all(short not in sentence for sentence in Turn(turn, False, "en").sentences())
    for reordered in (_reverse_words(short), short.split()[0]):
        assert verify_turn(turn, turn.replace(short, reordered, 1)) is not None


# A label and a value of at most three words, no sentence end: a record of data, kept whole.
LABELLED_VALUES = [
    ("Use these values.\nName: John Doe\nAge: 30", "John Doe"),
    ("Here is the run.\n\nOutput: Hello World", "Output"),
    ("The fields are:\n- City: New York", "New York"),
]


@pytest.mark.parametrize(("turn", "part"), LABELLED_VALUES)
def test_a_label_and_its_value_are_kept(turn: str, part: str) -> None:
    line = turn[: turn.index(part)].count("\n") + 1
    found = verify_turn(turn, spoil(turn, part))
    assert found is not None and found.startswith(f"line {line}: "), found
    kept = turn.split("\n")[line - 1]
    assert all(part not in sentence for sentence in Turn(turn, False, "en").sentences()), kept


@pytest.mark.parametrize("item", ["Top three reasons:\n1. speed\n2. safety", "Ingredients:\n- 2 eggs"])
def test_a_list_item_is_still_prose(item: str) -> None:
    assert verify_turn(item, translate_words(item)) is None


# (prose line, the code in it): code of several chunks is one piece, spaces included.
INLINE_VALUES = [
    ("The expected output is [2, 4] for that input.", "[2, 4]"),
    ("It prints ['a', 'b'] and then stops.", "['a', 'b']"),
    (
        "The script throws 'TypeError: 'NoneType' object is not iterable' when the list is empty.",
        "'TypeError: 'NoneType' object is not iterable'",
    ),
    ("The array [a, b, c] holds the letters.", "[a, b, c]"),
    ("The function returns {name: 'Bob', age: 30} as the result.", "{name: 'Bob', age: 30}"),
    ("Use a Map<Character, Integer> to count them.", "Map<Character, Integer>"),
    ("Add #include <iostream> at the top of the file.", "#include <iostream>"),
    ("Call console.log(a, b) to print both values.", "console.log(a, b)"),
    ("Loop while i <= n holds.", "i <= n"),
    ("It stops once x > 5 is true.", "x > 5"),
    ("If count >= 10, the loop ends.", "count >= 10"),
    ("Even numbers pass the test (num % 2 === 0) in the filter.", "% 2 === 0"),
    ("The program prints 'Don't stop' and exits.", "'Don't stop'"),
    (
        'Given the shell command \'curl -H "Authorization: Bearer ${TOKEN}" "https://api.example.com/'
        "profile/user/12345\"', write the same request in Python.",
        '\'curl -H "Authorization: Bearer ${TOKEN}" "https://api.example.com/profile/user/12345"\'',
    ),
]


@pytest.mark.parametrize(("line", "code"), [v for v in INLINE_VALUES if re.search("[A-Za-z]", v[1])])
def test_inline_code_letters_are_code(line: str, code: str) -> None:
    """The single letters and plain words inside a piece of code (``[a, b, c]``, ``i <= n``,
    ``Bearer`` in a quoted command) are code: transliterated, the line is rejected."""
    assert verify_turn(line, spoil(line, code)) is not None


def _reverse_words(text: str) -> str:
    return " ".join(reversed(text.split()))


@pytest.mark.parametrize(("line", "code"), INLINE_VALUES)
def test_lists_and_quoted_errors_in_prose_stay_whole(line: str, code: str) -> None:
    assert verify_turn(line, line.replace(code, _reverse_words(code))) is not None
    turn = Turn(line, False, "en")
    assert all(code not in sentence for sentence in turn.sentences())
    done = {s: _reverse_words(s) for s in turn.sentences()}
    out, _ = turn.assemble(done, {})
    assert code in out
