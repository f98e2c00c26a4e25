using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;
using Xunit.Abstractions;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>
/// Three <c>distbp node</c> processes started the way k8s/job.yaml starts its pods: the ConfigMap's variables, the pod's
/// DISTBP_* variables, its own address (one network namespace each, deploy/netns.sh), and Akka.Management cluster
/// bootstrap — with config discovery listing the three management endpoints in place of the Kubernetes API.
/// </summary>
public sealed class PodClusterTests(ITestOutputHelper output)
{
    internal static readonly string Root = FindRoot();
    private const int HttpPort = 8080;

    [NetnsFact]
    public void Pods_bootstrap_a_cluster_train_and_survive_a_deleted_pod_with_the_fault_free_weights()
    {
        using var folder = new TempFolder();
        var prefix = $"dbpt{Environment.ProcessId % 100000}";
        string[] pods = ["distbp-0", "distbp-1", "distbp-2"];
        var addresses = pods.Select((_, k) => $"10.231.0.{k + 2}").ToArray();
        // The ConfigMap as the pods get it, with outputs in the test's folder and a run long enough (20 epochs, ~620
        // steps) that the pod is deleted mid-run: with 3 epochs a fast machine finished the job between the probe that
        // picked the victim and the SIGTERM, and the victim exited 0.
        var env = ConfigMap();
        env["DISTBP_EPOCHS"] = "20";
        env["DISTBP_OUT"] = folder.File("model.distbp");
        env["DISTBP_SUMMARY_JSON"] = folder.File("summary.json");
        env["DISTBP_CHECKPOINT_DIR"] = folder.File("checkpoints");
        env["DISTBP_RUN_DIR"] = folder.File("run");
        var oracle = Distbp.Run(["train", .. env.Where(e => e.Key is not ("DISTBP_OUT" or "DISTBP_SUMMARY_JSON" or "DISTBP_CHECKPOINT_DIR" or "DISTBP_RUN_DIR" or "DISTBP_MIN_NODES" or "DISTBP_JOIN_TIMEOUT"))
            .Select(e => $"--{e.Key["DISTBP_".Length..].ToLowerInvariant().Replace('_', '-')}={e.Value}"), "--run-dir", folder.File("oracle-run")]);
        Assert.True(oracle.ExitCode == 0, oracle.ToString());

        var secretFile = folder.File("cluster-secret");
        File.WriteAllText(secretFile, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        Run("bash", [Path.Combine(Root, "deploy", "netns.sh"), "up", prefix, .. pods]);
        var nodes = new List<NamespacedProcess>();
        try
        {
            for (var k = 0; k < pods.Length; k++)
            {
                var podEnv = new Dictionary<string, string>(env)
                {
                    // k8s/job.yaml's container env, discovery switched from kubernetes to config.
                    ["DISTBP_HOSTNAME"] = addresses[k],
                    ["DISTBP_PORT"] = "4053",
                    ["DISTBP_DISCOVERY"] = "config",
                    ["DISTBP_CONTACT_ENDPOINTS"] = string.Join(",", addresses.Select(a => $"{a}:8558")),
                    ["DISTBP_SERVICE_NAME"] = "distbp",
                    ["DISTBP_CONTACT_POINTS"] = "3",
                    ["DISTBP_MANAGEMENT_PORT"] = "8558",
                    ["DISTBP_HTTP_PORT"] = HttpPort.ToString(),
                    // The Secret the pods mount (k8s/job.yaml).
                    ["DISTBP_CLUSTER_SECRET_FILE"] = secretFile,
                };
                nodes.Add(Start(prefix + "-" + pods[k], podEnv, ["node"]));
            }

            // Readiness turns true on every pod (joined the cluster through bootstrap).
            var ready = new HashSet<int>();
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (ready.Count < pods.Length && DateTime.UtcNow < deadline && nodes.All(n => !n.Process.HasExited))
            {
                for (var k = 0; k < pods.Length; k++)
                {
                    if (!ready.Contains(k) && Probe(prefix + "-" + pods[k], addresses[k], "/healthz/ready").ExitCode == 0)
                    {
                        ready.Add(k);
                    }
                }
            }
            Assert.True(ready.Count == pods.Length, $"ready: {string.Join(",", ready)}\n{Dump(nodes)}");

            // /metrics answers; once training runs, pick a pod that hosts a worker but not the coordinator.
            int? victim = null;
            deadline = DateTime.UtcNow.AddSeconds(60);
            while (victim is null && DateTime.UtcNow < deadline && nodes.All(n => !n.Process.HasExited))
            {
                var metrics = Enumerable.Range(0, pods.Length)
                    .Select(k => Probe(prefix + "-" + pods[k], addresses[k], "/metrics").Stdout).ToArray();
                Assert.All(metrics, m => Assert.Contains("# TYPE distbp_local_workers gauge", m));
                var steps = metrics.Select(m => Value(m, "distbp_steps_total")).ToArray();
                var local = metrics.Select(m => Value(m, "distbp_local_workers")).ToArray();
                if (steps.Any(s => s > 0) && local.Sum() == pods.Length)
                {
                    victim = Enumerable.Range(0, pods.Length).Cast<int?>().FirstOrDefault(k => local[k!.Value] > 0 && steps[k.Value] == 0);
                    output.WriteLine($"steps {string.Join(",", steps)}; local workers {string.Join(",", local)}; victim {victim}");
                }
            }
            Assert.True(victim is not null, "training did not start\n" + Dump(nodes));

            // kubectl delete pod: SIGTERM, then a graceful leave within terminationGracePeriodSeconds (45 s).
            Run("kill", ["-TERM", nodes[victim.Value].Process.Id.ToString()]);
            Assert.True(nodes[victim.Value].Process.WaitForExit(TimeSpan.FromSeconds(45)), "the deleted pod did not leave\n" + Dump(nodes));
            Assert.Equal(143, nodes[victim.Value].Process.ExitCode);

            foreach (var (pod, process, _) in nodes)
            {
                Assert.True(process.WaitForExit(TimeSpan.FromSeconds(120)), $"{pod} did not finish\n{Dump(nodes)}");
            }
            output.WriteLine(Dump(nodes));
            var survivors = nodes.Where((_, k) => k != victim).ToList();
            Assert.All(survivors, n => Assert.True(n.Process.ExitCode == 0, Dump(nodes)));
            var printed = survivors.Select(n => Regex.Match(n.Output.ToString(), "weights_sha256 ([0-9a-f]{64})"))
                .Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();
            Assert.Equal([oracle.WeightsSha256], printed);
            Assert.True(File.Exists(env["DISTBP_OUT"]));
        }
        finally
        {
            foreach (var (_, process, _) in nodes.Where(n => !n.Process.HasExited))
            {
                process.Kill(entireProcessTree: true);
            }
            Run("bash", [Path.Combine(Root, "deploy", "netns.sh"), "down", prefix, .. pods]);
        }
    }

    private static Dictionary<string, string> ConfigMap()
    {
        var env = new Dictionary<string, string>();
        var inData = false;
        foreach (var line in File.ReadLines(Path.Combine(Root, "k8s", "configmap.yaml")))
        {
            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                inData = true;
            }
            else if (inData && Regex.Match(line, "^  (DISTBP_[A-Z_]+): \"(.*)\"$") is { Success: true } m)
            {
                env[m.Groups[1].Value] = m.Groups[2].Value;
            }
        }
        Assert.NotEmpty(env);
        return env;
    }

    private static double Value(string metrics, string name) =>
        Regex.Match(metrics, $"^{name} (\\S+)$", RegexOptions.Multiline) is { Success: true } m
            ? double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)
            : 0;

    private static NamespacedProcess Start(string ns, Dictionary<string, string> env, string[] args) =>
        NamespacedProcess.Start(ns, "env", [.. env.Select(e => $"{e.Key}={e.Value}"), Dotnet(), Distbp.DllPath, .. args]);

    private static DistbpRun Probe(string ns, string address, string path)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["netns", "exec", ns, Dotnet(), Distbp.DllPath, "probe", $"http://{address}:{HttpPort}{path}"])
        {
            start.ArgumentList.Add(a);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new DistbpRun(process.ExitCode, stdout.Result, stderr.Result);
    }

    internal static void Run(string file, string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)}: {error}");
    }

    private static string Dump(List<NamespacedProcess> nodes) => NamespacedProcess.Dump(nodes);

    internal static string Dotnet() =>
        Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "k8s", "configmap.yaml")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("repository root (k8s/configmap.yaml) not found");
    }
}
