#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server, so the pods' discovery path runs here as it runs in a cluster.

  k8s-api-standin.py serve --listen IP:PORT --cert PEM --key PEM --token FILE POD=IP ...
      HTTPS; answers what Akka.Discovery.KubernetesApi asks: GET /api/v1/namespaces/NS/pods[?labelSelector=...].
      Like the API server it wants the service account's bearer token (else 401), authorizes the request against
      k8s/rbac.yaml (a Role granting `list` on `pods`, bound to the ServiceAccount the Job's pods run as; else 403), and
      lists the given pods — named POD, at IP, labelled and with the container ports of k8s/job.yaml's pod template — that
      match the label selector, in the namespace k8s/kustomization.yaml sets. Each request is printed, one line.
  k8s-api-standin.py env POD_IP
      Prints as JSON the environment k8s/job.yaml's container gets: the ConfigMap's data (envFrom), then its `env`
      entries, with the pod's IP for status.podIP and $(VAR) references expanded as the kubelet expands them.

Needs python3-yaml (Debian's docker-compose brings it).
"""
import json
import os
import re
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml

K8S = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "k8s")


def load(name):
    with open(os.path.join(K8S, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


NAMESPACE = load("kustomization.yaml")[0]["namespace"]
JOB = load("job.yaml")[0]
TEMPLATE = JOB["spec"]["template"]
SERVICE_ACCOUNT = TEMPLATE["spec"]["serviceAccountName"]


def allowed(verb, resource):
    """Whether k8s/rbac.yaml lets the pods' ServiceAccount do `verb` on core `resource` in the namespace."""
    objects = load("rbac.yaml")
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        bound = any(s.get("kind") == "ServiceAccount" and s.get("name") == SERVICE_ACCOUNT
                    and s.get("namespace", NAMESPACE) == NAMESPACE for s in binding.get("subjects", []))
        role = roles.get(binding["roleRef"]["name"]) if binding["roleRef"]["kind"] == "Role" else None
        if bound and role and any("" in r.get("apiGroups", []) and resource in r.get("resources", [])
                                  and (verb in r.get("verbs", []) or "*" in r.get("verbs", []))
                                  for r in role.get("rules", [])):
            return True
    return False


def matches(selector, labels):
    """Equality-based selectors (a=b, a==b, a!=b, comma-separated), as the API server reads them."""
    for term in filter(None, (selector or "").split(",")):
        m = re.fullmatch(r"\s*([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)\s*", term)
        if not m:
            return False
        key, op, value = m.groups()
        if (labels.get(key) == value) != (op != "!="):
            return False
    return True


def pod(name, ip):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": TEMPLATE["metadata"]["labels"]},
        "spec": {"serviceAccountName": SERVICE_ACCOUNT,
                 "containers": [{"name": c["name"], "image": c["image"], "ports": c.get("ports", [])}
                                for c in TEMPLATE["spec"]["containers"]]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def serve(listen, cert, key, token_file, pods):
    token = open(token_file).read().strip()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def status(self, code, reason, message):
            self.answer(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                               "message": message, "code": code})

        def do_GET(self):
            url = urlparse(self.path)
            selector = parse_qs(url.query).get("labelSelector", [""])[0]
            m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", url.path)
            if self.headers.get("Authorization") != f"Bearer {token}":
                print(f"401 {self.path}", flush=True)
                return self.status(401, "Unauthorized", "Unauthorized")
            if not m:
                print(f"404 {self.path}", flush=True)
                return self.status(404, "NotFound", f"the server could not find {url.path}")
            if not allowed("list", "pods") or m.group(1) != NAMESPACE:
                print(f"403 {self.path}", flush=True)
                return self.status(403, "Forbidden", f'pods is forbidden: User "system:serviceaccount:{NAMESPACE}:'
                                   f'{SERVICE_ACCOUNT}" cannot list resource "pods" in namespace "{m.group(1)}"')
            items = [pod(n, ip) for n, ip in pods if matches(selector, TEMPLATE["metadata"]["labels"])]
            print(f"200 {self.path} -> {len(items)} pods", flush=True)
            self.answer(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})

        def log_message(self, *args):
            pass

    host, port = listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {listen}", flush=True)
    server.serve_forever()


def environment(pod_ip):
    container = TEMPLATE["spec"]["containers"][0]
    env = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update({k: str(v) for k, v in next(o for o in load("configmap.yaml") if o["metadata"]["name"] == name)["data"].items()})
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            if path != "status.podIP":
                raise SystemExit(f"env {entry['name']}: no stand-in for fieldRef {path}")
            value = pod_ip
        else:
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(entry["value"]))
        env[entry["name"]] = value
    return env


if __name__ == "__main__":
    if sys.argv[1:2] == ["env"]:
        print(json.dumps(environment(sys.argv[2])))
    elif sys.argv[1:2] == ["serve"]:
        args, pods = {}, []
        rest = sys.argv[2:]
        while rest:
            if rest[0].startswith("--"):
                args[rest[0][2:]] = rest[1]
                rest = rest[2:]
            else:
                name, ip = rest.pop(0).split("=", 1)
                pods.append((name, ip))
        serve(args["listen"], args["cert"], args["key"], args["token"], pods)
    else:
        raise SystemExit(__doc__)
