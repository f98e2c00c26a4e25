using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;
using Xunit.Abstractions;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>
/// The discovery path Kubernetes runs, run here: three pods, each in its own network namespace with k8s/job.yaml's
/// container environment as the kubelet gives it (<c>DISTBP_DISCOVERY=kubernetes</c> included), the service account's
/// token, CA and namespace files at /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT, and the
/// cluster secret mounted where the Job mounts it — and, in a fourth namespace, a stand-in API server
/// (deploy/k8s-api-standin.py) that lists the pods over HTTPS to the bearer of that token, as k8s/rbac.yaml allows. A
/// wrong label selector or a Role without <c>list</c> on pods leaves bootstrap without contact points: this test fails.
/// </summary>
[Collection(SoakCollection.Name)]
public sealed class KubernetesDiscoveryTests(ITestOutputHelper output)
{
    private const string ApiAddress = "10.231.0.5";
    private const string SecretMount = "/etc/distbp/cluster-secret";

    [NetnsFact]
    public void Pods_find_each_other_through_the_kubernetes_api_and_train_with_the_one_process_weights()
    {
        using var folder = new TempFolder();
        var prefix = $"dbpk{Environment.ProcessId % 100000}";
        string[] pods = ["distbp-0", "distbp-1", "distbp-2"];
        var addresses = pods.Select((_, k) => $"10.231.0.{k + 2}").ToArray();
        var runs = folder.File("runs");

        // What a pod's file system holds: the service account's files, and the cluster secret's.
        var (certificate, key) = ApiServerCertificate();
        var serviceAccount = Directory.CreateDirectory(folder.File("run/secrets/kubernetes.io/serviceaccount")).FullName;
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
        File.WriteAllText(Path.Combine(serviceAccount, "token"), token);
        File.WriteAllText(Path.Combine(serviceAccount, "ca.crt"), certificate);
        File.WriteAllText(Path.Combine(serviceAccount, "namespace"), "distbp");
        var secret = Directory.CreateDirectory(folder.File("cluster-secret")).FullName;
        File.WriteAllText(Path.Combine(secret, "secret"), Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        var certificateFile = folder.File("api.crt");
        var keyFile = folder.File("api.key");
        File.WriteAllText(certificateFile, certificate);
        File.WriteAllText(keyFile, key);
        var createdMount = !Directory.Exists(SecretMount);
        Directory.CreateDirectory(SecretMount); // an empty mount point; each pod mounts its secret over it privately

        PodClusterTests.Run("bash", [Path.Combine(PodClusterTests.Root, "deploy", "netns.sh"), "up", prefix, .. pods, "kube-api"]);
        var processes = new List<NamespacedProcess>();
        try
        {
            processes.Add(NamespacedProcess.Start($"{prefix}-kube-api", "/usr/bin/python3",
                [Path.Combine(PodClusterTests.Root, "deploy", "k8s-api-standin.py"), "serve", "--listen", $"{ApiAddress}:443",
                 "--cert", certificateFile, "--key", keyFile, "--token", Path.Combine(serviceAccount, "token"),
                 .. pods.Select((p, k) => $"{p}={addresses[k]}")]));
            for (var k = 0; k < pods.Length; k++)
            {
                var env = JobEnvironment(addresses[k]);
                // The ConfigMap's training options, shorter, with the outputs in the test's folder (the Job's volume).
                env["DISTBP_EPOCHS"] = "2";
                env["DISTBP_OUT"] = Path.Combine(runs, "model.distbp");
                env["DISTBP_SUMMARY_JSON"] = Path.Combine(runs, "summary.json");
                env["DISTBP_CHECKPOINT_DIR"] = Path.Combine(runs, "checkpoints");
                env["DISTBP_RUN_DIR"] = Path.Combine(runs, "run");
                // What every pod sees from Kubernetes itself.
                env["KUBERNETES_SERVICE_HOST"] = ApiAddress;
                env["KUBERNETES_SERVICE_PORT"] = "443";
                // /var/run is /run: the service account's files appear where the client library reads them, and the secret
                // where the Job mounts it, in this pod's mount namespace only.
                processes.Add(NamespacedProcess.Start($"{prefix}-{pods[k]}", "sh",
                    ["-c", """mount --bind "$1" /run && mount --bind "$2" "$3" && shift 3 && exec "$@" """, "sh",
                     folder.File("run"), secret, SecretMount, "env", .. env.Select(e => $"{e.Key}={e.Value}"),
                     PodClusterTests.Dotnet(), Distbp.DllPath, "node"]));
            }

            foreach (var (name, process, _) in processes.Skip(1))
            {
                Assert.True(process.WaitForExit(TimeSpan.FromMinutes(4)), $"{name} did not finish\n{NamespacedProcess.Dump(processes)}");
            }
            output.WriteLine(NamespacedProcess.Dump(processes));
            Assert.All(processes.Skip(1), p => Assert.True(p.Process.ExitCode == 0, NamespacedProcess.Dump(processes)));
            var printed = processes.Skip(1).Select(p => Regex.Match(p.Output.ToString(), "weights_sha256 ([0-9a-f]{64})"))
                .Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();
            // One process with the ConfigMap's training options.
            var training = JobEnvironment(addresses[0]).Where(e => e.Key is "DISTBP_LAYERS" or "DISTBP_OPTIMIZER" or "DISTBP_LR"
                or "DISTBP_BATCH" or "DISTBP_SLICES" or "DISTBP_SEED");
            var oracle = Distbp.Run(["train", "--epochs", "2", "--run-dir", folder.File("oracle"),
                .. training.Select(e => $"--{e.Key["DISTBP_".Length..].ToLowerInvariant()}={e.Value}")]);
            Assert.Equal([oracle.WeightsSha256], printed);
            // The pods found each other through the stand-in's pod list, asked with the Job's label selector.
            var api = processes[0].Output.ToString();
            Assert.Contains("200 /api/v1/namespaces/distbp/pods", api);
            Assert.Contains("-> 3 pods", api);
        }
        finally
        {
            foreach (var (_, process, _) in processes.Where(p => !p.Process.HasExited))
            {
                process.Kill(entireProcessTree: true);
            }
            PodClusterTests.Run("bash", [Path.Combine(PodClusterTests.Root, "deploy", "netns.sh"), "down", prefix, .. pods, "kube-api"]);
            if (createdMount)
            {
                Directory.Delete(SecretMount);
                if (!Directory.EnumerateFileSystemEntries("/etc/distbp").Any())
                {
                    Directory.Delete("/etc/distbp");
                }
            }
        }
    }

    /// <summary>k8s/job.yaml's container environment for the pod at <paramref name="podIp"/> (the stand-in reads the YAML).</summary>
    private static Dictionary<string, string> JobEnvironment(string podIp)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(PodClusterTests.Root, "deploy", "k8s-api-standin.py"));
        start.ArgumentList.Add("env");
        start.ArgumentList.Add(podIp);
        using var process = Process.Start(start)!;
        var json = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        return JsonSerializer.Deserialize<Dictionary<string, string>>(json)!;
    }

    /// <summary>A self-signed certificate for the API server's address, and its key (PEM): it is also the pods' ca.crt.</summary>
    private static (string Certificate, string Key) ApiServerCertificate()
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=kubernetes", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Parse(ApiAddress));
        names.AddDnsName("kubernetes.default.svc");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return (certificate.ExportCertificatePem(), rsa.ExportPkcs8PrivateKeyPem());
    }
}
