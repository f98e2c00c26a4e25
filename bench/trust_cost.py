#!/usr/bin/env python3
"""What trust costs on the data channel: two `distbp node` processes on loopback training the cluster benchmark work
(as `compare.py cluster`: global batch 512, the full Fashion-MNIST, 2 epochs), alternating in one session with
PyTorch DDP (gloo, 2 processes) as the reference:

  plain     data channel, no cluster secret (the unauthenticated channel)
  secret    data channel, every connection proves the cluster secret (HMAC handshake) - what simulate runs
  tls       remoting and data channel over TLS (a self-signed certificate the nodes' SSL_CERT_FILE trusts), with the secret
  tls-akka  remoting over TLS with the data channel off: what a TLS cluster got before the channel ran over TLS

  RUNS=5 python3 bench/trust_cost.py
Needs: apt-get install dataset-fashion-mnist python3-torch libopenblas0-pthread; openssl; a Release build of distbp.
Writes each run's summary under bench/results/trust-<UTC time>/ and prints medians and ratios.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import COMMON, DISTBP, ROOT, RUNS, torch  # noqa: E402

MODES = ["plain", "secret", "tls", "tls-akka"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificate(folder):
    key, pem, pfx = (os.path.join(folder, n) for n in ("key.pem", "cert.pem", "node.pfx"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem, "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    subprocess.run(["openssl", "pkcs12", "-export", "-inkey", key, "-in", pem, "-out", pfx, "-passout", "pass:bench"],
                   check=True, capture_output=True)
    return pem, pfx


def cluster(mode, out, pem, pfx):
    port = free_port()
    tls = mode.startswith("tls")
    scheme = "akka.ssl.tcp" if tls else "akka.tcp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTBP_")}
    if mode != "plain":
        env["DISTBP_CLUSTER_SECRET"] = "a benchmark cluster secret, 32 bytes"
    if tls:
        env.update(DISTBP_TLS_CERTIFICATE=pfx, DISTBP_TLS_CERTIFICATE_PASSWORD="bench", SSL_CERT_FILE=pem)
    common = ["--seeds", f"{scheme}://distbp@127.0.0.1:{port}", "--min-nodes", "2", "--batch", "512",
              "--data-channel", "off" if mode == "tls-akka" else "on", "--run-dir", os.path.join(out, "run"), *COMMON]
    summary = os.path.join(out, "summary.json")
    seed = subprocess.Popen(["dotnet", DISTBP, "node", "--port", str(port), "--summary-json", summary, *common],
                            cwd=out, env=env, stdout=subprocess.DEVNULL)
    joiner = subprocess.Popen(["dotnet", DISTBP, "node", "--port", "0", *common], cwd=out, env=env, stdout=subprocess.DEVNULL)
    if seed.wait(timeout=600) != 0 or joiner.wait(timeout=120) != 0:
        raise SystemExit(f"{mode}: a node failed (seed {seed.returncode}, joiner {joiner.returncode})")
    with open(summary) as f:
        return json.load(f)


def main():
    folder = os.path.join(ROOT, "bench/results", f"trust-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    os.makedirs(folder, exist_ok=True)
    pem, pfx = certificate(tempfile.mkdtemp(prefix="distbp-bench-tls-"))
    results = {m: [] for m in MODES + ["pytorch-ddp"]}
    for i in range(RUNS):
        for mode in MODES:
            out = os.path.join(folder, f"{mode}-{i}")
            os.makedirs(out, exist_ok=True)
            results[mode].append(cluster(mode, out, pem, pfx))
        results["pytorch-ddp"].append(torch("cluster"))
        print(f"run {i}: " + " | ".join(f"{m} {results[m][-1]['samples_per_second']:,.0f}" for m in results), flush=True)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    med = {m: statistics.median(r["samples_per_second"] for r in rs) for m, rs in results.items()}
    print(f"\n{RUNS} alternating runs, median samples/s (results in {os.path.relpath(folder, ROOT)}):")
    for m in results:
        print(f"  {m:12} {med[m]:10,.0f}   x{med[m] / med['plain']:.2f} of plain   x{med[m] / med['pytorch-ddp']:.2f} of DDP")
    for m in MODES:
        steps = {k: statistics.median(r["step_seconds"][k] for r in results[m]) * 1000 for k in results[m][0]["step_seconds"]}
        print(f"  {m:12} per step (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))


if __name__ == "__main__":
    main()
