"""The data contract is one source of truth: docs and schemas are generated from it."""

from __future__ import annotations

from pathlib import Path

from opmetrics.methodology.contract import json_schema, load_contract, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_doc_is_generated_from_contract():
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert doc == markdown(), "docs/data-contract.md is stale: run `opmetrics contract docs`"


def test_required_names_from_the_issue_are_in_the_contract():
    c = load_contract()
    assert {
        "request_id",
        "party_id",
        "user_role",
        "srv",
        "mode",
        "critical",
        "device_id",
        "device_type",
        "smets",
        "region",
        "received_at",
        "responded_at",
        "response_code",
        "report_status",
        "dsp_attempts",
        "quarantine_released_at",
        # legs of the journey (issue 12), optional and absent from 1.1 files
        "csp_sent_at",
        "chf_reached_at",
        "device_answered_at",
        "csp_returned_at",
    } == set(c.table("service_requests").field_names)
    assert c.table("service_requests").may_be_absent == {
        "csp_sent_at", "chf_reached_at", "device_answered_at", "csp_returned_at"
    }  # fmt: skip
    assert {"alert_id", "alert_code", "kind", "request_id", "raised_at", "delivered_at", "suppressed"} <= set(
        c.table("alerts").field_names
    )
    assert {"incident_id", "category", "dcc_responsible", "assigned_at", "closed_at"} <= set(
        c.table("incidents").field_names
    )
    assert {"outage_id", "service", "subsystem", "planned", "incident_id"} <= set(
        c.table("outages").field_names
    )


def test_json_schema_lists_every_field_and_nullability():
    t = load_contract().table("service_requests")
    s = json_schema(t)
    assert set(s["required"]) == set(t.field_names) and s["additionalProperties"] is False
    assert s["properties"]["smets"]["enum"] == [1, 2]
    assert {"type": "null"} in s["properties"]["responded_at"]["anyOf"]
