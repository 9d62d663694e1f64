"""/metadata's JSON Schemas describe the row objects /predict takes, and agree with it.

Each schema is checked with a real JSON Schema validator (jsonschema, draft 2020-12) against
the service's own validation (``nb2prod_validation.validate``) on the same rows.
"""

from __future__ import annotations

import copy
from typing import Any

import pandera.pandas as pa
import pytest
from jsonschema import Draft202012Validator

from nb2prod.serving.contract import request_schema, row_schema
from nb2prod.serving.validation import validate
from tests.unit.test_validation import notebook_schema

SCHEMA = pa.DataFrameSchema(
    {
        "age": pa.Column(int, [pa.Check.in_range(0, 120, include_max=False)]),
        "score": pa.Column(float, [pa.Check.ge(-1.5), pa.Check.ge(-1.0)], nullable=True),
        "plan": pa.Column(str, [pa.Check.isin(["basic", "plus"])], nullable=True),
        "code": pa.Column(str, [pa.Check.str_matches(r"[A-Z]{2}"), pa.Check.str_length(2, 4)]),
        "note": pa.Column(str, [pa.Check(lambda s: s.str.len() < 9, name="short")]),
    },
    coerce=True,
    strict=True,
)
COLUMNS = list(SCHEMA.columns)
GOOD = {"age": 30, "score": None, "plan": "plus", "code": "AB1", "note": "hi"}


def test_a_row_is_an_object_with_one_property_per_column() -> None:
    row = row_schema(SCHEMA, COLUMNS)
    Draft202012Validator.check_schema(row)
    assert row["type"] == "object" and row["required"] == COLUMNS
    assert row["additionalProperties"] is False  # strict: unknown keys are refused
    props = row["properties"]
    assert props["age"] == {"type": "integer", "minimum": 0, "exclusiveMaximum": 120}
    # nullable: "null" is a type and an allowed value; a second bound goes into allOf
    assert props["score"] == {
        "type": ["number", "null"],
        "minimum": -1.5,
        "allOf": [{"minimum": -1.0}],
    }
    assert props["plan"] == {"type": ["string", "null"], "enum": ["basic", "plus", None]}
    assert props["code"] == {
        "type": "string",
        "pattern": "^(?:[A-Z]{2})",
        "minLength": 2,
        "maxLength": 4,
    }
    # a custom check JSON Schema cannot say is named, not dropped silently
    assert props["note"] == {"type": "string", "description": "also checked: short"}


def test_the_request_body_is_a_list_of_rows() -> None:
    body = request_schema(row_schema(SCHEMA, COLUMNS), max_rows=3)
    Draft202012Validator.check_schema(body)
    assert body["required"] == ["rows"]
    rows = body["properties"]["rows"]
    assert rows["type"] == "array" and rows["maxItems"] == 3
    assert rows["items"]["properties"]["age"]["type"] == "integer"
    validator = Draft202012Validator(body)
    assert validator.is_valid({"rows": [GOOD, GOOD]})
    assert not validator.is_valid({"rows": [GOOD] * 4})
    assert not validator.is_valid(GOOD)  # a bare row is not a request


def _mutations() -> list[dict[str, Any]]:
    changes = [
        {},
        {"age": 119},
        {"age": 120},
        {"age": -1},
        {"age": "30"},
        {"score": -1.0},
        {"score": -1.2},
        {"score": 3.5},
        {"plan": None},
        {"plan": "gold"},
        {"code": "ab"},
        {"code": "ABCDE"},
        {"code": "A"},
        {"extra": 1},
    ]
    return [{**GOOD, **change} for change in changes] + [
        {k: v for k, v in GOOD.items() if k != "code"}
    ]


@pytest.mark.parametrize("row", _mutations(), ids=lambda r: str(r)[:60])
def test_the_schema_accepts_a_row_exactly_when_the_service_does(row: dict[str, Any]) -> None:
    # the custom check aside ("note" stays short): JSON Schema cannot say it
    validator = Draft202012Validator(row_schema(SCHEMA, COLUMNS))
    _, failures = validate(SCHEMA, [copy.deepcopy(row)], COLUMNS)
    assert validator.is_valid(row) == (not failures), (list(validator.iter_errors(row)), failures)


def test_the_churn_examples_rows_pass_its_row_schema_as_they_pass_the_service() -> None:
    from tests.support import churn_rows, records

    schema = notebook_schema("churn", "Customer")
    columns = list(schema.columns)
    row = row_schema(schema, columns)
    Draft202012Validator.check_schema(row)
    assert set(row["properties"]) == set(columns)
    assert row["properties"]["monthly_charges"]["type"] == ["number", "null"]
    rows = records(churn_rows(200, seed=5).drop(columns="churned"))
    validator = Draft202012Validator(row)
    assert not [e.message for r in rows for e in validator.iter_errors(r)][:3]
    assert validate(schema, rows, columns)[1] == []
    assert not validator.is_valid({**rows[0], "contract": "weekly"})
