"""Checks that deploy/snow.toml, deploy/Dockerfile and deploy/k8s/ agree with
one another, which neither hadolint nor a schema sees: the ConfigMap carries
the same snow.toml, ports and probes match the manifest's listeners, names
referenced by the Deployment exist, and the termination grace period covers
preStop + drain_delay + grace.

Run by deploy/check.sh with its venv's Python (PyYAML; tomllib needs 3.11):
    python consistency.py DEPLOY_DIR
Prints one line per check and exits 1 if any failed.
"""

import difflib
import re
import sys
import tomllib
from pathlib import Path

import yaml

DEFAULT_GRACE = "30s"
DEFAULT_ADMIN = "127.0.0.1:8013"
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|\[::1\]|localhost):\d+$")

failures = 0


def check(ok, what):
    global failures
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures += 1


def seconds(text):
    """A humantime-style duration ("5s", "100ms", "1m 30s") in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text)
    if not parts or re.sub(r"[\d.\sa-z]", "", text):
        raise ValueError(f"cannot read duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def port(addr):
    return int(addr.rsplit(":", 1)[1])


def dockerfile_instructions(path):
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def main(deploy):
    global failures
    text = (deploy / "snow.toml").read_text()
    manifest = tomllib.loads(text)
    limits = manifest.get("limits", {})
    listen = port(manifest["listen"])
    admin = manifest.get("admin", DEFAULT_ADMIN)
    check(admin == "off" or LOOPBACK.match(admin) is not None,
          f"snow.toml: admin API on loopback ({admin})")
    check("health" in manifest, "snow.toml: a health listener is configured")
    health = port(manifest.get("health", ":0"))
    drain = seconds(limits.get("drain_delay", "0s"))
    grace = seconds(limits.get("grace", DEFAULT_GRACE))

    # Dockerfile
    instructions = dockerfile_instructions(deploy / "Dockerfile")
    exposed = {int(p.split("/")[0]) for w, a in instructions if w == "EXPOSE" for p in a.split()}
    wanted = {listen, health} | ({port(admin)} if admin != "off" else set())
    check(wanted <= exposed, f"Dockerfile: EXPOSE {sorted(exposed)} covers {sorted(wanted)}")
    users = [a for w, a in instructions if w == "USER"]
    uid = users[-1].split(":")[0] if users else ""
    check(uid.isdigit() and int(uid) != 0, f"Dockerfile: runs as a numeric non-root user ({uid or 'none'})")
    copies = [a.split()[-1] for w, a in instructions if w == "COPY"]
    check("/etc/snow/snow.toml" in copies, "Dockerfile: copies snow.toml to /etc/snow/snow.toml")
    for module in manifest.get("module", []):
        check(module["wasm"] in copies,
              f"Dockerfile: copies module {module['name']} to {module['wasm']}")

    # Kubernetes manifests
    k8s = deploy / "k8s"
    docs, files = {}, {}
    for f in sorted(k8s.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        found = [d for d in yaml.safe_load_all(f.read_text()) if d]
        check(bool(found), f"{f.name}: holds a resource")
        for d in found:
            docs.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
            files[(d["kind"], d["metadata"]["name"])] = f.name

    kust = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    check(kust.get("apiVersion") == "kustomize.config.k8s.io/v1beta1"
          and kust.get("kind") == "Kustomization", "kustomization.yaml: a Kustomization")
    known = {"apiVersion", "kind", "resources", "images", "namespace", "labels"}
    check(set(kust) <= known, f"kustomization.yaml: keys {sorted(set(kust))} are known")
    listed = kust.get("resources", [])
    for name in listed:
        check((k8s / name).is_file(), f"kustomization.yaml: {name} exists")
    for f in sorted(k8s.glob("*.yaml")):
        if f.name != "kustomization.yaml" and not f.name.endswith(".example.yaml"):
            check(f.name in listed, f"kustomization.yaml: lists {f.name}")

    deployments = list(docs.get("Deployment", {}).values())
    check(len(deployments) == 1, "one Deployment")
    if failures:
        return
    dep = deployments[0]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    container = pod["containers"][0]
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    config = [v for v in volumes.values() if "configMap" in v]
    cm_name = config[0]["configMap"]["name"] if config else None
    cm = docs.get("ConfigMap", {}).get(cm_name)
    check(cm is not None, f"Deployment: mounts ConfigMap {cm_name}, which exists")
    if cm is not None:
        carried = cm.get("data", {}).get("snow.toml", "")
        check(carried == text,
              f"{files[('ConfigMap', cm_name)]}: snow.toml is the same text as deploy/snow.toml")
        if carried != text:
            diff = difflib.unified_diff(text.splitlines(), carried.splitlines(),
                                        "deploy/snow.toml", "ConfigMap snow.toml", lineterm="")
            print("\n".join("      " + line for line in diff))
        mount = mounts.get(config[0]["name"], {}).get("mountPath")
        check(container.get("args", [])[-1:] == [f"{mount}/snow.toml"],
              f"Deployment: serves {mount}/snow.toml, where the ConfigMap is mounted")

    env = {e["name"]: e for e in container.get("env", [])}
    for store in manifest.get("store", []):
        var = store.get("url_env")
        if not var:
            continue
        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
        secret = docs.get("Secret", {}).get(ref.get("name"), {})
        check(ref.get("key") in secret.get("stringData", {}),
              f"Deployment: {var} (store {store['name']}) comes from Secret "
              f"{ref.get('name')} key {ref.get('key')}, as in the example Secret")

    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    check(ports.get("http") == listen, f"Deployment: container port http is listen ({listen})")
    check(ports.get("health") == health, f"Deployment: container port health is health ({health})")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        at = ports.get(get.get("port"), get.get("port"))
        ok = get.get("path") == path and at == health
        if probe == "startupProbe" and not container.get(probe):
            continue
        check(ok, f"Deployment: {probe} is GET {path} on the health port")

    pre = container.get("lifecycle", {}).get("preStop", {})
    command = pre.get("exec", {}).get("command", [])
    if "sleep" in pre:
        pre_stop = float(pre["sleep"]["seconds"])
    elif len(command) == 2 and command[0] == "sleep":
        pre_stop = float(command[1])
    else:
        pre_stop = None
    check(pre_stop is not None, f"Deployment: preStop sleeps ({pre_stop} s)")
    period = pod.get("terminationGracePeriodSeconds", 30)
    needed = (pre_stop or 0) + drain + grace
    check(period > needed, f"Deployment: terminationGracePeriodSeconds {period} > "
          f"preStop {pre_stop} + drain_delay {drain:g} + grace {grace:g} = {needed:g}")

    run_as = container.get("securityContext", {}).get("runAsUser",
                                                      pod.get("securityContext", {}).get("runAsUser"))
    check(str(run_as) == uid, f"Deployment: runAsUser {run_as} is the image's user {uid}")
    cache = env.get("SNOW_CACHE_DIR", {}).get("value")
    below = [m["mountPath"] for n, m in mounts.items()
             if "emptyDir" in volumes.get(n, {}) and cache
             and cache.startswith(m["mountPath"].rstrip("/") + "/")]
    check(bool(below), f"Deployment: SNOW_CACHE_DIR {cache} is a directory inside an emptyDir")

    for name, svc in docs.get("Service", {}).items():
        selector = svc["spec"].get("selector", {})
        check(bool(selector) and selector.items() <= labels.items(),
              f"Service {name}: selector matches the pod's labels")
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            check(ports.get(target, target) == listen,
                  f"Service {name}: port {p['port']} reaches listen ({listen})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: consistency.py DEPLOY_DIR")
    try:
        main(Path(sys.argv[1]))
    except (KeyError, IndexError, TypeError, ValueError, OSError, yaml.YAMLError,
            tomllib.TOMLDecodeError) as err:
        check(False, f"could not read the deploy files: {type(err).__name__}: {err}")
    sys.exit(1 if failures else 0)
