using System.Net;
using System.Net.Sockets;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Dashboard;

/// <summary><c>--dashboard</c> on the real command line: a port that cannot be had is bad input, before any training.</summary>
public sealed class DashboardOptionTests
{
    private static readonly string[] Work = ["--layers", "784-8-10", "--epochs", "1", "--batch", "64"];

    [Theory]
    [InlineData("train")]
    [InlineData("simulate")]
    public void A_dashboard_port_in_use_exits_2_with_one_line(string command)
    {
        using var temp = new TempFolder();
        var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        try
        {
            var port = ((IPEndPoint)taken.LocalEndpoint).Port;
            string[] args = command == "simulate" ? ["simulate", "--nodes", "2", .. Work] : ["train", .. Work];
            var run = Distbp.RunIn(temp.Path, [.. args, "--dashboard", $"{port}"]);

            BadInput.Check(run, "--dashboard");
            Assert.Contains($"{port}", run.Stderr);
            Assert.Contains("in use", run.Stderr);
            Assert.DoesNotContain("test accuracy", run.Stdout);
        }
        finally
        {
            taken.Stop();
        }
    }

    [Fact]
    public void A_dashboard_port_that_is_not_a_port_exits_2() =>
        BadInput.Check(Distbp.Run(["train", .. Work, "--dashboard", "70000"]), "--dashboard");

    [Fact]
    public void Dashboard_host_without_dashboard_exits_2() =>
        BadInput.Check(Distbp.Run(["train", .. Work, "--dashboard-host", "0.0.0.0"]), "--dashboard-host");
}
