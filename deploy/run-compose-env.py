#!/usr/bin/env python3
"""Starts docker-compose.yml's cluster without Docker, the way the image would run it.

Usage: run-compose-env.py PUBLISH_DIR [NAME=VALUE ...]   (root; iproute2, setpriv, docker-compose)

- `docker-compose config` gives each service's environment (anchors and merges resolved, as compose sees them);
- deploy/Dockerfile gives the ENV defaults, the USER, the ENTRYPOINT and the HEALTHCHECK command;
- each service runs in its own network namespace (deploy/netns.sh) under its compose hostname, as the image's user,
  with /app mapped to PUBLISH_DIR (deploy/publish.sh's output) and /data to a fresh folder (the named volume);
- NAME=VALUE arguments override the environment of every service (e.g. DISTBP_EPOCHS=1 for a short run).
Checks: every service's HEALTHCHECK command and /healthz/ready succeed while it runs, every node exits 0, and the seed
wrote the model and the summary into the volume. Exit 0 when all hold.
"""
import json, os, re, shutil, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
publish = os.path.abspath(sys.argv[1])
overrides = dict(a.split("=", 1) for a in sys.argv[2:])

import yaml  # python3-yaml comes with Debian's docker-compose

config = yaml.safe_load(subprocess.run(["docker-compose", "-f", f"{root}/docker-compose.yml", "config"],
                                       check=True, capture_output=True, text=True).stdout)

# ---- the Dockerfile's run stage: ENV, USER, ENTRYPOINT, HEALTHCHECK ----
dockerfile = open(f"{root}/deploy/Dockerfile").read().replace("\\\n", " ")
run_stage = dockerfile[dockerfile.rindex("\nFROM "):]
image_env = {}
for line in run_stage.splitlines():
    if line.startswith("ENV "):
        for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', line[4:]):
            image_env[name] = value.strip('"')
user = re.search(r"^USER (\d+):(\d+)", run_stage, re.M).groups()
entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", run_stage, re.M).group(1))
healthcheck = json.loads(re.search(r"^HEALTHCHECK .*CMD (\[.*\])", run_stage, re.M).group(1))

data = tempfile.mkdtemp(prefix="distbp-volume-")
os.chown(data, int(user[0]), int(user[1]))
os.chmod(publish, 0o755)

def host_path(value):
    """/app and /data inside the image are PUBLISH_DIR and the volume folder here."""
    for inside, outside in (("/app", publish), ("/data", data)):
        if value == inside or value.startswith(inside + "/"):
            return outside + value[len(inside):]
    return value

dotnet_root = os.path.dirname(os.path.realpath(shutil.which("dotnet")))
services = list(config["services"])
prefix = f"dbpc{os.getpid() % 100000}"
netns = f"{root}/deploy/netns.sh"
hostnames = [config["services"][s].get("hostname", s) for s in services]
subprocess.run(["bash", netns, "up", prefix, *hostnames], check=True)

def command(service, argv):
    env = {**image_env, **{k: str(v) for k, v in (config["services"][service].get("environment") or {}).items()},
           **overrides}
    env = {k: host_path(v) for k, v in env.items()}
    # What the image has and this host may not: the runtime's location, a HOME for the non-root user.
    env.update(DOTNET_ROOT=dotnet_root, HOME="/tmp", PATH="/usr/bin:/bin")
    ns = f"{prefix}-{config['services'][service].get('hostname', service)}"
    return ["ip", "netns", "exec", ns, "setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups",
            "env", "-i", *[f"{k}={v}" for k, v in sorted(env.items())], *[host_path(a) for a in argv]]

failures = []
processes = {}
try:
    for service in services:
        print(f"start {service}: {' '.join(entrypoint)} with {len(config['services'][service]['environment'])} compose variables", flush=True)
        processes[service] = subprocess.Popen(command(service, entrypoint), stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True)
    healthy, ready = set(), set()
    deadline = time.time() + 60
    while time.time() < deadline and len(ready) < len(services) and all(p.poll() is None for p in processes.values()):
        for service in services:
            if service not in healthy and subprocess.run(command(service, healthcheck), capture_output=True).returncode == 0:
                healthy.add(service)
            port = overrides.get("DISTBP_HTTP_PORT", image_env.get("DISTBP_HTTP_PORT"))
            if service not in ready and subprocess.run(command(service, ["/app/distbp", "probe", f"http://127.0.0.1:{port}/healthz/ready"]),
                                                       capture_output=True).returncode == 0:
                ready.add(service)
        time.sleep(0.5)
    print(f"HEALTHCHECK passed on: {sorted(healthy)}; ready on: {sorted(ready)}", flush=True)
    if len(healthy) < len(services) or len(ready) < len(services):
        failures.append("not every service became healthy and ready while running")
    for service, process in processes.items():
        try:
            out, _ = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
            failures.append(f"{service} did not finish")
        print(f"--- {service} (exit {process.returncode})\n{out}", flush=True)
        if process.returncode != 0:
            failures.append(f"{service} exited {process.returncode}")
    writer = next((s for s in services if "DISTBP_OUT" in (config["services"][s].get("environment") or {})), services[0])
    seed_env = {k: host_path(str(v)) for k, v in config["services"][writer]["environment"].items()}
    for key in ("DISTBP_OUT", "DISTBP_SUMMARY_JSON"):
        path = seed_env.get(key)
        if not path or not os.path.isfile(path):
            failures.append(f"{key} ({path}) was not written")
    if os.path.isfile(seed_env.get("DISTBP_SUMMARY_JSON", "")):
        summary = json.load(open(seed_env["DISTBP_SUMMARY_JSON"]))
        print(f"summary: nodes {summary.get('nodes')}, workers {summary.get('workers')}, weights_sha256 {summary.get('weights_sha256')}")
finally:
    for process in processes.values():
        if process.poll() is None:
            process.kill()
    subprocess.run(["bash", netns, "down", prefix, *hostnames])
    shutil.rmtree(data, ignore_errors=True)

if failures:
    print("compose environment run FAILED: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
print("compose environment run passed")
