"""Facts of Azure's REST API examples that the emulator's tests check it against, in the repository's own format.

    .venv/bin/python -m anycast_lab.arm.example_facts EXAMPLES [--table README.md] [--output FILE]

EXAMPLES is the `examples` folder of Azure's public REST API specs for Microsoft.Network at api-version 2025-07-01
(Azure/azure-rest-api-specs, specification/network/resource-manager/Microsoft.Network/.../stable/2025-07-01/examples):
one JSON file per example, `{"parameters": {...}, "responses": {"<status>": {"body": ...}}}`, in the folder or in
one level of subfolders. An example file does not say its method and path (the API's swagger does), so a table
gives them: a Markdown file (`--table`, default EXAMPLES/README.md) with rows

    | <anything/>NAME.json | METHOD | path template[ (a note)] | ...further cells ignored |

the path relative to /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/
unless it starts with `/`. Every row is taken (its file must exist); a JSON file without a row is named on stderr
and left out.

What is kept of each example (nothing else, no text of the files):
- `method`, `path`: the absolute path template;
- `parameters`: the values of the template's names, but the subscription (a client uses its own);
- `body`: the request body of a PUT/PATCH, its resource ids under /subscriptions/{subscriptionId}/;
- `statuses`: the status codes the example documents;
- `response_keys`: for a read of one resource (GET ending in a name) and a route listing (POST), the key paths of
  the 200 body: `a.b` for a key b in object a, `a[].b` for a key b of the first item of list a; only the leaves
  (`a.b` implies `a`).

The output is sorted JSON (see dumps()), the same for the same input; its
`_about` says where the facts come from.
"""
import argparse
import glob
import json
import os
import re
import sys

from ..paths import REPO

API_VERSION = "2025-07-01"
DEFAULT_OUTPUT = os.path.join(REPO, "lab", "tests", "integration", "arm", "azure_rest_example_facts.json")
PREFIX = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/"
WIDTH = 160
METHODS = ("GET", "PUT", "DELETE", "POST", "PATCH", "HEAD")


def load(path=DEFAULT_OUTPUT):
    """The facts file: {"_about": {...}, "api_version": ..., "examples": {name: {...}}}."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def table_rows(table):
    """Example name -> (method, absolute path template), from the Markdown table."""
    rows = {}
    with open(table, encoding="utf-8") as handle:
        for line in handle:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and cells[0].endswith(".json") and cells[1] in METHODS:
                template = cells[2].split(" (")[0]
                rows[os.path.basename(cells[0])[:-len(".json")]] = (cells[1], template if template.startswith("/") else PREFIX + template)
    return rows


def key_paths(body, where=""):
    """Every key path of a body: through objects, and through the first item of a list of objects."""
    paths = set()
    for key, value in body.items():
        if "." in key or "[" in key:
            raise ValueError(f"key {where}{key!r} cannot be written as a key path")
        paths.add(f"{where}{key}")
        if isinstance(value, dict):
            paths |= key_paths(value, f"{where}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            paths |= key_paths(value[0], f"{where}{key}[].")
    return paths


def facts_of(name, data, method, template):
    """What the tests need of one example (see the module's docstring)."""
    params = data["parameters"]
    if params.get("api-version") != API_VERSION:
        raise ValueError(f"{name}: api-version {params.get('api-version')!r}, not {API_VERSION}")
    names = [found for found in re.findall(r"\{(\w+)\}", template) if found != "subscriptionId"]
    facts = {"method": method, "path": template, "parameters": {key: params[key] for key in names},
             "statuses": sorted(data["responses"])}
    bodies = [value for value in params.values() if isinstance(value, dict)]
    if method in ("PUT", "PATCH") and bodies:
        if len(bodies) > 1:
            raise ValueError(f"{name}: more than one body among its parameters")
        facts["body"] = json.loads(re.sub(r"/subscriptions/[^/\"]+/", "/subscriptions/{subscriptionId}/", json.dumps(bodies[0])))
    if (method == "GET" and template.endswith("}")) or method == "POST":
        paths = key_paths(data["responses"]["200"]["body"])
        facts["response_keys"] = sorted(path for path in paths if not any(other.startswith((path + ".", path + "[].")) for other in paths))
    return facts


def derive(folder, table):
    """The facts document of every example the table lists."""
    rows = table_rows(table)
    found = glob.glob(os.path.join(folder, "*.json")) + glob.glob(os.path.join(folder, "*", "*.json"))
    files = {os.path.basename(path)[:-len(".json")]: path for path in found}
    for name in sorted(set(files) - set(rows)):
        print(f"{name}.json: no row in {os.path.basename(table)}, left out", file=sys.stderr)
    examples = {}
    for name, (method, template) in sorted(rows.items()):
        if name not in files:
            raise SystemExit(f"{name}.json (a row of the table) is not in {folder}")
        with open(files[name], encoding="utf-8") as handle:
            examples[name] = facts_of(name, json.load(handle), method, template)
    about = {"source": "Azure's public REST API specs (Azure/azure-rest-api-specs), Microsoft.Network, the examples of api-version "
                       f"{API_VERSION}: specification/network/resource-manager/Microsoft.Network/.../stable/{API_VERSION}/examples",
             "derived_by": "python -m anycast_lab.arm.example_facts <that examples folder> (its docstring says what is kept)",
             "kept": "method and path (from the swagger's operation, listed in a table beside the examples), the path's parameter values, "
                     "the request body, the documented status codes, the key paths of the 200 body of reads of one resource and route lists",
             "examples": sorted(examples)}
    return {"_about": about, "api_version": API_VERSION, "examples": examples}


def dumps(value, indent="", lead=0):
    """Sorted JSON: a value on one line when it fits in WIDTH characters (after `lead` of its line), else an object one
    key a line, a list of objects one a line, a list of strings as many a line as fit."""
    text = json.dumps(value, sort_keys=True)
    if len(indent) + lead + len(text) <= WIDTH or not isinstance(value, (dict, list)) or not value:
        return text
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(key)}: {dumps(value[key], inner, len(json.dumps(key)) + 2)}" for key in sorted(value)]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if all(isinstance(item, str) for item in value):
        lines = [[]]
        for item in map(json.dumps, value):
            if lines[-1] and len(inner) + len(", ".join(lines[-1] + [item])) + 1 > WIDTH:
                lines.append([])
            lines[-1].append(item)
        items = [inner + ", ".join(line) for line in lines]
    else:
        items = [f"{inner}{dumps(item, inner)}" for item in value]
    return "[\n" + ",\n".join(items) + f"\n{indent}]"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m anycast_lab.arm.example_facts", description=__doc__.split("\n", 1)[0])
    parser.add_argument("examples", help=f"the examples folder of Azure's REST API specs for Microsoft.Network at api-version {API_VERSION}")
    parser.add_argument("--table", help="the Markdown table of each example's method and path (default: EXAMPLES/README.md)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="where to write the facts (default: %(default)s; - for stdout)")
    args = parser.parse_args(argv)
    text = dumps(derive(args.examples, args.table or os.path.join(args.examples, "README.md"))) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
