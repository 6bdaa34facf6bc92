"""The HTTP listing of drift checks (``DriftRecordOut``) is ``monitoring.DriftRecord`` minus its
per-column details, field for field and type for type.

They are two declarations on purpose: the API app does not import the monitoring stage (and
scipy with it) when the server starts. This test keeps the two from drifting apart.
"""

from __future__ import annotations

import dataclasses
import typing

from modelcycle.interfaces.http.routes_ops import DriftRecordOut
from modelcycle.monitoring.results import DriftRecord

# In the record for the console's detail view; the listing leaves them out to stay small.
NOT_LISTED = {"robust", "drifted_details"}


def test_the_listing_schema_is_the_record_without_its_details() -> None:
    hints = typing.get_type_hints(DriftRecord)
    record = {f.name: hints[f.name] for f in dataclasses.fields(DriftRecord)}
    listed = {name: field.annotation for name, field in DriftRecordOut.model_fields.items()}
    assert listed == {k: v for k, v in record.items() if k not in NOT_LISTED}
    assert set(record) >= NOT_LISTED
