"""The checked-in stubs are exactly what `make proto` generates from loravault.proto."""

from pathlib import Path

import pytest

from loravault.proto import codegen, loravault_pb2

PROTO_DIR = Path(codegen.__file__).resolve().parent


def test_checked_in_stubs_match_freshly_generated(tmp_path):
    codegen.generate(tmp_path)
    for name in codegen.GENERATED:
        fresh = (tmp_path / name).read_text()
        assert (PROTO_DIR / name).read_text() == fresh, f"{name} is stale: run `make proto`"


@pytest.mark.parametrize("service", ["Admin", "Tenants", "Adapters", "Erasure", "Inference"])
def test_contract_declares_service_in_package_loravault_v1(service):
    assert loravault_pb2.DESCRIPTOR.services_by_name[service].full_name == f"loravault.v1.{service}"
