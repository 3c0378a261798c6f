"""Intrinsic functions: the compliance file, plus what a JSON file cannot say.

The compliance file (tests/compliance/intrinsics.json) holds every example of the AWS developer
guide's "Intrinsic functions" page, results recorded on AWS in localstack's snapshots, and cases
observed on AWS by public conformance suites; each group's comment names its source.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path

import pytest

from statelang.language.env import Env
from statelang.language.errors import IntrinsicFailure, PathError, StatesError, StaticError
from statelang.language.intrinsic_functions import FUNCTIONS, InvalidArguments
from statelang.language.intrinsics import (
    Call,
    Literal,
    PathArg,
    arity_problem,
    compile_intrinsic,
    is_intrinsic,
    parse_intrinsic,
)

COMPLIANCE = json.loads((Path(__file__).parent / "compliance" / "intrinsics.json").read_text())
CASES = [(group["given"], case) for group in COMPLIANCE for case in group["cases"]]


@pytest.mark.parametrize(("given", "case"), CASES, ids=[c["expression"][:70] for _, c in CASES])
def test_compliance(given, case):
    expression = case["expression"]
    if case.get("error") == "StaticError":
        with pytest.raises(StaticError):
            compile_intrinsic(expression)
        return
    fn = compile_intrinsic(expression)
    if "error" in case:
        with pytest.raises(StatesError) as info:
            fn(given, Env())
        assert info.value.error == case["error"]
        assert case["cause"] in info.value.cause
    else:
        result = fn(given, Env())
        assert result == case["result"]
        # ints stay ints and floats stay floats, as AWS prints them
        assert json.dumps(result) == json.dumps(case["result"])


def test_every_aws_function_is_registered():
    # The AWS developer guide lists these 18 intrinsics; no more, no fewer.
    assert set(FUNCTIONS) == {
        "States.Format", "States.StringToJson", "States.JsonToString", "States.Array",
        "States.ArrayPartition", "States.ArrayContains", "States.ArrayRange", "States.ArrayGetItem",
        "States.ArrayLength", "States.ArrayUnique", "States.Base64Encode", "States.Base64Decode",
        "States.Hash", "States.JsonMerge", "States.MathRandom", "States.MathAdd",
        "States.StringSplit", "States.UUID"}


def test_parse_gives_a_typed_ast():
    ast = parse_intrinsic("States.Format('a\\'{}', $.x, -2.5, 7, true, null, States.UUID(), $$.Execution.Id)")
    assert ast.name == "States.Format"
    assert ast.args[0] == Literal("a'{}", 14, "a\\'{}")
    assert ast.args[1] == PathArg("$.x", 23)
    assert [a.value for a in ast.args[2:6]] == [-2.5, 7, True, None]
    assert isinstance(ast.args[3].value, int)
    assert ast.args[6] == Call("States.UUID", (), ast.args[6].position)
    assert ast.args[7].path == "$$.Execution.Id"
    with pytest.raises(AttributeError):
        ast.name = "x"  # frozen


def test_paths_with_brackets_and_commas_inside_quotes():
    data = {"a,b": [10, 20], "c": {"d)": 1}}
    assert compile_intrinsic("States.Array($['a,b'][1], $.c['d)'])")(data, Env()) == [20, 1]


def test_variables_context_and_whole_input():
    # JSONPath-mode variables ($name), the context object ($$) and the whole input ($).
    env = Env(context={"Execution": {"Id": "arn:x"}}, variables={"total": {"n": 3}})
    fn = compile_intrinsic("States.Array($total.n, $$.Execution.Id, $)")
    assert fn({"k": 1}, env) == [3, "arn:x", {"k": 1}]


@pytest.mark.parametrize(("text", "problem"), [
    ("States.Nope(1)", "unknown function 'States.Nope' at position 0"),
    ("States.Array(1", "not closed"),
    ("States.Array(1) x", "unexpected 'x' after the call at position 16"),
    ("States.Array('abc)", "unterminated string literal at position 13"),
    ("States.Array('a\\n')", "open escape backslash"),
    ("States.Array(,)", "missing argument at position 13"),
])
def test_static_errors_name_problem_and_position(text, problem):
    with pytest.raises(StaticError) as info:
        compile_intrinsic(text)
    assert problem in str(info.value)


def test_malformed_path_is_static():
    with pytest.raises(StaticError):
        compile_intrinsic("States.Array($.)")


def test_nesting_limit_is_ten():
    # AWS: "You can nest up to 10 intrinsic functions within a field".
    ten = "States.Array(" * 10 + "1" + ")" * 10
    assert compile_intrinsic(ten)(None, Env()) is not None
    with pytest.raises(StaticError, match="nested"):
        compile_intrinsic("States.Array(" * 11 + "1" + ")" * 11)


def test_aws_nine_deep_example_from_the_guide():
    text = ("States.Format('{}.{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
            "States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem("
            "States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), "
            "'.'), 1))")
    data = {"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:1:image-recipe/my.recipe/1.0.0"}}
    # the third {} has no argument: AWS's own example fails at run time, as the count rule says
    with pytest.raises(InvalidArguments):
        compile_intrinsic(text)(data, Env())
    two = text.replace("'{}.{}.{}'", "'{}.{}'")
    assert compile_intrinsic(two)(data, Env()) == "1.0"


def test_is_intrinsic():
    assert is_intrinsic("States.Format('x')")
    assert is_intrinsic("States.Nope(")  # malformed, but meant as a call: compile reports it
    assert not is_intrinsic("$.States")
    assert not is_intrinsic("States")
    assert not is_intrinsic(42)


def test_runtime_failure_is_intrinsic_failure_with_aws_error_and_cause():
    # AWS reports bad arguments as States.Runtime, naming the call that failed.
    fn = compile_intrinsic("States.Array(States.MathAdd($.a, 'x'))")
    with pytest.raises(IntrinsicFailure) as info:
        fn({"a": 1}, Env())
    assert info.value.error == "States.Runtime"
    assert info.value.cause == ("There was an error while evaluating the intrinsic function: "
                                "States.MathAdd($.a, 'x'). Invalid arguments in States.MathAdd")


def test_missing_path_names_path_and_input():
    with pytest.raises(PathError) as info:
        compile_intrinsic("States.Base64Encode($.missing)")({}, Env())
    assert info.value.cause.endswith(
        "The JsonPath argument for the field '$.missing' could not be found in the input '{}'")


@pytest.mark.parametrize("name", ["States.Base64Encode", "States.Base64Decode", "States.Hash"])
def test_ten_thousand_character_limit(name):
    # AWS: the input string may hold at most 10,000 characters.
    extra = ", 'SHA-256'" if name == "States.Hash" else ""
    fn = compile_intrinsic(f"{name}($.s{extra})")
    fn({"s": "A" * 10_000}, Env())
    with pytest.raises(InvalidArguments):
        fn({"s": "A" * 10_001}, Env())


def test_array_range_accepts_exactly_1000_items():
    assert len(compile_intrinsic("States.ArrayRange(1, 1000, 1)")(None, Env())) == 1000
    assert len(compile_intrinsic("States.ArrayRange(1000, 1, -1)")(None, Env())) == 1000


def test_math_random_draws_from_env_rng_unless_seeded():
    fn = compile_intrinsic("States.MathRandom(1, 999)")
    a = [fn(None, Env(rng=random.Random(7))) for _ in range(3)]
    assert a[0] == a[1] == a[2]  # same rng seed, same draw: replays reproduce values
    values = {fn(None, Env(rng=random.Random(s))) for s in range(200)}
    assert len(values) > 100 and min(values) >= 1 and max(values) < 999  # end is exclusive
    seeded = compile_intrinsic("States.MathRandom(1, 100, 42)")
    assert len({seeded(None, Env(rng=random.Random(s))) for s in range(20)}) == 1
    assert {compile_intrinsic(f"States.MathRandom(1, 3, {s})")(None, Env()) for s in range(50)} == {1, 2}


def test_uuid_is_v4_from_env_rng():
    fn = compile_intrinsic("States.UUID()")
    u = fn(None, Env(rng=random.Random(3)))
    assert u == str(uuid.UUID(int=random.Random(3).getrandbits(128), version=4))
    assert uuid.UUID(u).version == 4
    assert u != fn(None, Env(rng=random.Random(4)))


def test_an_env_seeded_by_its_key_draws_what_the_joined_text_draws():
    """The interpreter hands an Env its seed as (execution, frame, event id) and joins it only if
    drawn from: the draws must be those of the text stored histories were made with, so that a
    replay of an older execution gets the same States.UUID."""
    fn = compile_intrinsic("States.UUID()")
    key = ("arn:aws:states:us-east-1:123456789012:execution:m:e", "0.3", 17)
    assert fn(None, Env(seed=key)) == fn(None, Env(seed="arn:aws:states:us-east-1:123456789012:execution:m:e#0.3#17"))


def test_arity_problem_for_the_validator():
    assert arity_problem(parse_intrinsic("States.MathAdd(1)")) == \
        "States.MathAdd takes 2 argument(s) but is given 1"
    assert arity_problem(parse_intrinsic("States.MathRandom(1, 2, 3, 4)")) == \
        "States.MathRandom takes 2 to 3 argument(s) but is given 4"
    assert "at least 1" in arity_problem(parse_intrinsic("States.Format()"))
    assert arity_problem(parse_intrinsic("States.Array()")) is None


def test_results_are_fresh_per_call():
    # Handlers may mutate what they receive; a literal must not leak between evaluations.
    fn = compile_intrinsic("States.Array(1, 2)")
    first = fn(None, Env())
    first.append(3)
    assert fn(None, Env()) == [1, 2]


def test_format_evaluations_per_second():
    """Throughput of a States.Format call with two path arguments (reported, loosely bounded)."""
    fn = compile_intrinsic("States.Format('Hello {}, you owe {}', $.name, $.amount)")
    data, env = {"name": "Ada", "amount": 12.5}, Env()
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        fn(data, env)
    rate = n / (time.perf_counter() - start)
    print(f"States.Format with two paths: {rate:,.0f} evaluations/second")
    assert fn(data, env) == "Hello Ada, you owe 12.5"
    assert rate > 10_000
