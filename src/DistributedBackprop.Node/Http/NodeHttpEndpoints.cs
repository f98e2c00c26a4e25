using System.Net;
using DistributedBackprop.Cluster.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DistributedBackprop.Node.Http;

/// <summary>
/// The node's one small HTTP port: <c>/healthz/live</c> (the actor system is alive), <c>/healthz/ready</c> (this node is
/// an Up member of the cluster) — Akka.Hosting's own health checks behind ASP.NET's MapHealthChecks — and
/// <c>/metrics</c> in Prometheus text format. It binds one address only (the node's), nothing else.
/// </summary>
public static class NodeHttpEndpoints
{
    public const string LivePath = "/healthz/live";
    public const string ReadyPath = "/healthz/ready";
    public const string MetricsPath = "/metrics";

    /// <param name="port">health and metrics; null: not served.</param>
    /// <param name="managementPort">cluster bootstrap's contact point (GET /bootstrap/seed-nodes); null: not served.</param>
    public static void AddTo(IHostBuilder host, string bindAddress, int? port, string managementAddress,
        int? managementPort, PrometheusExposition metrics) =>
        host.ConfigureWebHost(web => web
            .UseKestrel(kestrel =>
            {
                foreach (var address in port is null ? [] : Addresses(bindAddress))
                {
                    kestrel.Listen(address, port!.Value);
                }
                foreach (var address in managementPort is null ? [] : Addresses(managementAddress))
                {
                    kestrel.Listen(address, managementPort!.Value);
                }
            })
            .ConfigureServices(services =>
            {
                services.AddRouting();
                services.AddHealthChecks();
            })
            .Configure(app =>
            {
                app.UseRouting();
                app.UseEndpoints(endpoints =>
                {
                    if (port is { } p)
                    {
                        var host = $"*:{p}";
                        endpoints.MapHealthChecks(LivePath, new HealthCheckOptions { Predicate = c => c.Tags.Contains(HealthTags.Live) })
                            .RequireHost(host);
                        endpoints.MapHealthChecks(ReadyPath, new HealthCheckOptions { Predicate = c => c.Tags.Contains(HealthTags.Ready) })
                            .RequireHost(host);
                        endpoints.MapGet(MetricsPath, () => Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"))
                            .RequireHost(host);
                    }
                    if (managementPort is { } m)
                    {
                        endpoints.MapGet(BootstrapContactPoint.SeedNodesPath, (Akka.Actor.ActorSystem system) =>
                            Results.Text(BootstrapContactPoint.SeedNodesJson(system), "application/json")).RequireHost($"*:{m}");
                    }
                });
            }));

    private static IPAddress[] Addresses(string host) =>
        IPAddress.TryParse(host, out var ip) ? [ip]
        : host == "localhost" ? [IPAddress.Loopback]
        : Dns.GetHostAddresses(host);
}
