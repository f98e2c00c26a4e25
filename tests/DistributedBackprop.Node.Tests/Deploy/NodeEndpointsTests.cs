using System.Net;
using System.Net.Sockets;
using DistributedBackprop.Cluster.Telemetry;
using DistributedBackprop.Node.Http;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>The node's /metrics page, its probe command and its deployment options.</summary>
public sealed class NodeEndpointsTests
{
    [Fact]
    public void Metrics_page_is_prometheus_text_with_counters_gauges_and_a_step_time_histogram()
    {
        using var exposition = new PrometheusExposition();
        TrainingMetrics.RecordStep(0.02, 1234.5, 0.75, 3.5, clipped: true);
        var page = exposition.Render();
        Assert.Contains("# TYPE distbp_steps_total counter", page);
        Assert.Contains("# TYPE distbp_clipped_steps_total counter", page);
        Assert.Contains("# TYPE distbp_loss gauge", page);
        Assert.Contains("distbp_loss 0.75\n", page);
        Assert.Contains("distbp_gradient_norm 3.5\n", page);
        Assert.Contains("distbp_samples_per_second 1234.5\n", page);
        Assert.Contains("# TYPE distbp_step_seconds histogram", page);
        Assert.Contains("distbp_step_seconds_bucket{le=\"0.025\"} 1\n", page);
        Assert.Contains("distbp_step_seconds_bucket{le=\"+Inf\"} 1\n", page);
        Assert.Contains("distbp_step_seconds_count 1\n", page);
        foreach (var name in new[] { "distbp_bytes_sent_total", "distbp_workers_alive", "distbp_faults_handled_total", "distbp_local_workers" })
        {
            Assert.Contains($"\n{name} ", "\n" + page);
        }
        Assert.All(page.Split('\n', StringSplitOptions.RemoveEmptyEntries),
            line => Assert.Matches(@"^(# (HELP|TYPE) distbp_\w+ .+|distbp_\w+(\{le=""[^""]+""\})? \S+)$", line));
    }

    [Fact]
    public void Probe_of_a_port_nobody_listens_on_fails_with_exit_1()
    {
        var run = Distbp.Run("probe", $"http://127.0.0.1:{FreePort()}/healthz/live");
        Assert.True(run.ExitCode == 1, run.ToString());
    }

    [Theory]
    [InlineData("--discovery=dns", "--discovery")]
    [InlineData("--discovery=config", "--contact-endpoints")]
    [InlineData("--tls-certificate=/nonexistent/node.pfx", "--tls-certificate")]
    public void Bad_deployment_options_are_refused_with_one_line(string option, string named)
    {
        var run = Distbp.Run("node", option, "--layers=784-16-10", "--epochs=1");
        Assert.True(run.ExitCode == 2, run.ToString());
        var line = Assert.Single(run.StderrLines);
        Assert.StartsWith($"distbp: {named}", line);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
