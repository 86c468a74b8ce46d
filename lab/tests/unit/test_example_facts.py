"""anycast_lab.arm.example_facts on a made-up examples folder: what it keeps of an example, and the same output twice."""
import json

import pytest

from anycast_lab.arm.example_facts import derive, dumps, key_paths, main

TABLE = """| File | Method | Path shape |
| --- | --- | --- |
| 2025-07-01/TablePut.json | PUT | routeTables/{routeTableName} (a note) |
| 2025-07-01/TableGet.json | GET | routeTables/{routeTableName} |
| 2025-07-01/TablesAll.json | GET | /subscriptions/{subscriptionId}/providers/Microsoft.Network/routeTables |
"""
SUB = "/subscriptions/11111111-2222-3333-4444-555555555555"
EXAMPLES = {
    "TablePut": {"parameters": {"api-version": "2025-07-01", "subscriptionId": "s", "resourceGroupName": "rg9", "routeTableName": "t9",
                                "parameters": {"location": "northeurope", "tags": {"a": "b"},
                                               "properties": {"x": {"id": f"{SUB}/resourceGroups/rg9/providers/Microsoft.Network/routeTables/u"}}}},
                 "responses": {"201": {"body": {"name": "t9"}}, "200": {"body": {"name": "t9"}}}},
    "TableGet": {"parameters": {"api-version": "2025-07-01", "subscriptionId": "s", "resourceGroupName": "rg9", "routeTableName": "t9"},
                 "responses": {"200": {"body": {"id": "i", "tags": {}, "properties": {
                     "routes": [{"name": "r", "properties": {"nextHopType": "None"}}, {"other": 1}], "list": [1, 2]}}}}},
    "TablesAll": {"parameters": {"api-version": "2025-07-01", "subscriptionId": "s"}, "responses": {"200": {"body": {"value": []}}}},
    "Unlisted": {"parameters": {"api-version": "2025-07-01"}, "responses": {"200": {}}},
}


def _folder(tmp_path):
    (tmp_path / "2025-07-01").mkdir()
    for name, data in EXAMPLES.items():
        (tmp_path / "2025-07-01" / f"{name}.json").write_text(json.dumps(data))
    (tmp_path / "README.md").write_text(TABLE)
    return tmp_path


def test_an_example_keeps_its_method_path_values_body_statuses_and_key_paths(tmp_path, capsys):
    facts = derive(str(_folder(tmp_path)), str(tmp_path / "README.md"))
    assert sorted(facts["examples"]) == facts["_about"]["examples"] == ["TableGet", "TablePut", "TablesAll"]
    assert "Unlisted.json: no row" in capsys.readouterr().err
    put = facts["examples"]["TablePut"]
    assert put == {"method": "PUT", "path": "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/routeTables/"
                                            "{routeTableName}",
                   "parameters": {"resourceGroupName": "rg9", "routeTableName": "t9"}, "statuses": ["200", "201"],
                   "body": {"location": "northeurope", "tags": {"a": "b"},
                            "properties": {"x": {"id": "/subscriptions/{subscriptionId}/resourceGroups/rg9/providers/Microsoft.Network/routeTables/u"}}}}
    assert facts["examples"]["TableGet"]["response_keys"] == ["id", "properties.list", "properties.routes[].name",
                                                              "properties.routes[].properties.nextHopType", "tags"]
    assert facts["examples"]["TablesAll"] == {"method": "GET", "path": "/subscriptions/{subscriptionId}/providers/Microsoft.Network/routeTables",
                                              "parameters": {}, "statuses": ["200"]}


def test_the_output_is_the_same_twice_and_reads_back(tmp_path):
    folder = _folder(tmp_path)
    for out in ("a.json", "b.json"):
        main([str(folder), "--output", str(tmp_path / out)])
    text = (tmp_path / "a.json").read_text()
    assert text == (tmp_path / "b.json").read_text()
    assert json.loads(text) == json.loads(json.dumps(derive(str(folder), str(folder / "README.md"))))
    assert max(len(line) for line in dumps({"k": [f"key{i}" for i in range(100)]}).splitlines()) <= 160


def test_a_key_that_is_no_key_path_is_refused():
    assert key_paths({"a": {"b": [{"c": 1}]}}) == {"a", "a.b", "a.b[].c"}
    with pytest.raises(ValueError, match="a.b"):
        key_paths({"a.b": 1})
