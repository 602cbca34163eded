"""Job files that could be read more than one way are refused with their line: a quote left open that
swallows the rest of a row, a column named twice, control characters such as NUL."""
from __future__ import annotations

import pytest

from design_studio.batch.jobfile import JobLimits, load_job

LIMITS = JobLimits(max_steps=50, max_images=8, default_n=2, default_steps=2, default_width=64, default_height=64)
HEADER = "prompt,n,seed,project"


def job(tmp_path, text: str, name="season.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return load_job(path, LIMITS)


def reasons(job_) -> dict[int, str]:
    return {p.line: p.reason for p in job_.problems}


def test_a_quote_left_open_that_swallows_the_next_rows_is_named_at_its_line(tmp_path):
    text = "\n".join([HEADER, "good bag,2,1,P", '"open quote bag,2,2,P', "next bag,2,3,P", "last bag,2,4,P"]) + "\n"
    found = job(tmp_path, text)
    assert "never closed" in reasons(found)[3]
    assert [r.line for r in found.rows] == [2]  # nothing after the open quote runs


def test_a_quote_closed_on_a_later_line_that_eats_columns_is_refused(tmp_path):
    text = "\n".join([HEADER, '"tote bag,2,1,P', 'shoulder bag",2,2,P', "last bag,2,4,P"]) + "\n"
    problems = reasons(job(tmp_path, text))
    assert 2 in problems and ("quote" in problems[2])


def test_a_stray_quote_after_a_closed_value_is_refused(tmp_path):
    text = "\n".join([HEADER, '"tote" bag,2,1,P', "last bag,2,4,P"]) + "\n"
    problems = reasons(job(tmp_path, text))
    assert "not valid CSV" in problems[2] and "quoted whole" in problems[2]


def test_a_multi_line_quoted_prompt_with_every_column_is_still_accepted(tmp_path):
    text = "\n".join([HEADER, '"a tote bag', 'in two lines",2,1,P', "last bag,2,4,P"]) + "\n"
    found = job(tmp_path, text)
    assert not found.problems and found.rows[0].prompt.startswith("a tote bag")


@pytest.mark.parametrize("header, words", [
    ("prompt,n,seed,prompt", "column 'prompt' is named twice"),
    ("prompt,n,images,seed", "'n' and 'images' both name column n"),
    ("Prompt,negative,seed,prompt", "'Prompt' and 'prompt' both name column prompt"),
    ("prompt,negative_prompt,Negative", "both name column negative_prompt"),
])
def test_a_column_named_twice_refuses_the_file_at_line_1(tmp_path, header, words):
    with pytest.raises(ValueError, match=f"line 1: .*{words}"):
        job(tmp_path, header + "\nbag,2,1,P\n")


def test_a_jsonl_key_given_twice_or_under_two_aliases_is_refused_with_its_line(tmp_path):
    text = "\n".join(['{"prompt": "bag", "seed": 1}', '{"prompt": "bag", "seed": 2, "seed": 3}',
                      '{"prompt": "bag", "n": 2, "images": 3, "seed": 4}']) + "\n"
    problems = reasons(job(tmp_path, text, "season.jsonl"))
    assert "key 'seed' is given twice" in problems[2]
    assert "'n' and 'images' both name column n" in problems[3]


@pytest.mark.parametrize("bad, code", [("\x00", "U+0000"), ("\x1b[31m", "U+001B"), ("\x7f", "U+007F"),
                                       ("\x85", "U+0085"), ("\x08", "U+0008")])
def test_control_characters_are_refused_with_line_and_column(tmp_path, bad, code):
    text = "\n".join([HEADER, "good bag,2,1,P", f"bag{bad}gone,2,2,P", f"bag,2,3,Pro{bad}ject"]) + "\n"
    found = job(tmp_path, text)
    problems = reasons(found)
    assert f"column prompt: control character {code} at character 4" in problems[3]
    assert f"column project: control character {code}" in problems[4]
    assert [r.line for r in found.rows] == [2]


def test_nul_escaped_in_jsonl_is_refused_too(tmp_path):
    text = '{"prompt": "bag\\u0000", "seed": 1}\n{"prompt": "tote", "seed": 2}\n'
    found = job(tmp_path, text, "season.jsonl")
    assert "column prompt: control character U+0000" in reasons(found)[1]
    assert [r.line for r in found.rows] == [2]


def test_tabs_in_a_prompt_are_text_not_control(tmp_path):
    found = job(tmp_path, HEADER + "\nbag\twith tab,2,1,P\n")
    assert not found.problems
