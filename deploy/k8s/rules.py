"""callq's own rules for its rendered manifests, which no schema expresses.

- one image in every container, and the overlay's (not the base's placeholder);
- every container with a memory request and a limit at least as large;
- autoscaled Deployments set no replicas; every ScaledObject keeps at least one replica and
  names a Deployment and a TriggerAuthentication of the render;
- every Service selects pods of the render and targets a port they declare; the public
  Service never reaches the admin port; scrape annotations name a declared port;
- every ConfigMap a pod reads is in the render (the Secret callq-secrets is made apart);
- the migrate Job, and every ConfigMap it reads, carry callq/apply-first=true, the label the
  README applies before the rollout.
"""

import pathlib
import sys

import yaml

PLACEHOLDER_IMAGE = "callq"
PUBLIC_SERVICE = "callq-gateway"
APPLY_FIRST = "callq/apply-first"


def pod_spec(obj):
    kind = obj["kind"]
    if kind in ("Deployment", "Job"):
        return obj["spec"]["template"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return None


def config_maps_read(spec):
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            yield volume["configMap"]["name"]
    for container in spec["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                yield source["configMapRef"]["name"]


def check(objects):
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    pods = {name: (obj, pod_spec(obj)) for kind in ("Deployment", "Job", "CronJob")
            for name, obj in by_kind.get(kind, {}).items()}
    config_maps = set(by_kind.get("ConfigMap", {}))

    images = set()
    for name, (_, template) in pods.items():
        spec = template["spec"]
        for container in spec["containers"]:
            images.add(container["image"])
            resources = container.get("resources", {})
            request = resources.get("requests", {}).get("memory")
            limit = resources.get("limits", {}).get("memory")
            if request is None or limit is None:
                yield f"{name}/{container['name']}: memory request and limit both needed"
            elif quantity(limit) < quantity(request):
                yield f"{name}/{container['name']}: memory limit {limit} below request {request}"
        for config_map in config_maps_read(spec):
            if config_map not in config_maps:
                yield f"{name}: reads ConfigMap {config_map}, which is not rendered"
        port = template["metadata"].get("annotations", {}).get("prometheus.io/port")
        declared = {p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
        if port is not None and int(port) not in declared:
            yield f"{name}: scraped on port {port}, which no container declares"
    if len(images) != 1 or PLACEHOLDER_IMAGE in images:
        yield f"one image named by the overlay expected, found {sorted(images)}"

    targets = [hpa["spec"]["scaleTargetRef"]["name"]
               for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values()]
    for name, scaled in by_kind.get("ScaledObject", {}).items():
        spec = scaled["spec"]
        targets.append(spec["scaleTargetRef"]["name"])
        if spec.get("minReplicaCount", 0) < 1:
            yield f"ScaledObject {name}: minReplicaCount below 1 (workers drain the dead queue)"
        for trigger in spec["triggers"]:
            auth = trigger.get("authenticationRef", {}).get("name")
            if auth is not None and auth not in by_kind.get("TriggerAuthentication", {}):
                yield f"ScaledObject {name}: TriggerAuthentication {auth} is not rendered"
    for target in targets:
        deployment = by_kind.get("Deployment", {}).get(target)
        if deployment is None:
            yield f"autoscaler target {target} is not a rendered Deployment"
        elif "replicas" in deployment["spec"]:
            yield f"Deployment {target} sets replicas, which its autoscaler owns"

    for name, service in by_kind.get("Service", {}).items():
        selector = service["spec"]["selector"]
        selected = [template for _, template in pods.values()
                    if selector.items() <= template["metadata"].get("labels", {}).items()]
        if not selected:
            yield f"Service {name} selects no pods"
        named = {p.get("name"): p["containerPort"] for t in selected
                 for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if target not in named and target not in named.values():
                yield f"Service {name}: targetPort {target} is not a port of its pods"
            if name == PUBLIC_SERVICE and target in ("admin", named.get("admin")):
                yield f"Service {name} is public and reaches the admin port"

    migrate = by_kind.get("Job", {}).get("callq-migrate")
    if migrate is None:
        yield "the migrate Job callq-migrate is not rendered"
    else:
        first = [migrate] + [by_kind["ConfigMap"][c] for c in
                             config_maps_read(pod_spec(migrate)["spec"]) if c in config_maps]
        for obj in first:
            if obj["metadata"].get("labels", {}).get(APPLY_FIRST) != "true":
                yield f"{obj['kind']} {obj['metadata']['name']}: {APPLY_FIRST}=true missing"


def quantity(text):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def main():
    failed = 0
    for path in map(pathlib.Path, sys.argv[1:]):
        objects = [obj for obj in yaml.safe_load_all(path.read_text()) if obj]
        for problem in check(objects):
            failed += 1
            print(f"RULE {path.name}: {problem}")
    print(f"callq's rules: {failed} broken")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
