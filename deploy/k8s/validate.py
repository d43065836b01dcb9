"""Validates rendered Kubernetes objects offline, one YAML stream per argument.

Built-in kinds against the JSON schemas that the kubernetes-validate package bundles (strict:
an unknown or misspelt field fails), for every Kubernetes version given with --kubernetes;
KEDA's kinds against the schemas in schemas/, written for this repository. Any other kind
fails: a new CRD needs a schema here before it ships.
"""

import argparse
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"
CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.json",
}


def custom_validator(api_version, kind):
    name = CUSTOM.get((api_version, kind))
    if name is None:
        return None
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors_of(obj, versions):
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    validator = custom_validator(api_version, kind)
    if validator is not None:
        for error in validator.iter_errors(obj):
            path = ".".join(str(p) for p in error.absolute_path)
            yield f"{path}: {error.message}"
        return
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            yield f"Kubernetes {version}: {path}: {error.message}"
        except kubernetes_validate.SchemaNotFoundError:
            yield f"no schema for {api_version} {kind} in Kubernetes {version} nor in {SCHEMAS}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubernetes", action="append", required=True, metavar="VERSION")
    parser.add_argument("rendered", nargs="+", type=pathlib.Path)
    args = parser.parse_args()
    failed = checked = 0
    for path in args.rendered:
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj:
                continue
            checked += 1
            name = f"{path.name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            for error in errors_of(obj, args.kubernetes):
                failed += 1
                print(f"INVALID {name}: {error}")
    print(f"{checked} objects checked against Kubernetes {', '.join(args.kubernetes)} "
          f"and {SCHEMAS.name}/, {failed} errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
