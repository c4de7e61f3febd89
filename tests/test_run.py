"""flows/run.py: the ingest flow's class."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fastapi.encoders import jsonable_encoder
from prefect import Flow

from flows.ingest import ingest
from flows.run import PlainParametersFlow
from flows.settings import PROJECT_ROOT

PARAMETERS = [
    {"seeds": "/data/seeds", "batch_size": 500, "offline": False, "full_refresh": True,
     "only": ["PMC1", "PMC2"], "shard": "1/4"},
    {"seeds": None, "batch_size": None, "offline": True, "full_refresh": False, "only": None,
     "shard": None},
]  # fmt: skip


def test_plain_parameters_are_stored_as_prefects_own_encoder_stores_them() -> None:
    for parameters in PARAMETERS:
        assert ingest.serialize_parameters(parameters) == jsonable_encoder(parameters)
        assert ingest.serialize_parameters(parameters) == Flow.serialize_parameters(
            ingest, parameters
        )


def test_other_values_go_through_prefects_encoder() -> None:
    class Opaque:
        pass

    parameters = {"seeds": "x", "resources": Opaque(), "only": ("a", "b")}
    assert ingest.serialize_parameters(parameters) == Flow.serialize_parameters(ingest, parameters)


def test_the_flow_keeps_its_class_through_with_options() -> None:
    flow = ingest.with_options(name="other")
    assert isinstance(flow, PlainParametersFlow)
    assert flow.name == "other"
    assert flow.serialize_parameters(PARAMETERS[0]) == jsonable_encoder(PARAMETERS[0])


def test_a_run_process_stores_its_parameters_without_importing_fastapi() -> None:
    script = textwrap.dedent(
        """
        import sys
        from flows.ingest import ingest
        ingest.serialize_parameters({"seeds": "s", "batch_size": 5, "only": ["PMC1"]})
        print("fastapi" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, text=True, capture_output=True,
        timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "False"
