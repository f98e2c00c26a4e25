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

    public static void AddTo(IHostBuilder host, string bindAddress, int port, PrometheusExposition metrics) =>
        host.ConfigureWebHost(web => web
            .UseKestrel(kestrel =>
            {
                foreach (var address in Addresses(bindAddress))
                {
                    kestrel.Listen(address, port);
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
                    endpoints.MapHealthChecks(LivePath, new HealthCheckOptions { Predicate = c => c.Tags.Contains(HealthTags.Live) });
                    endpoints.MapHealthChecks(ReadyPath, new HealthCheckOptions { Predicate = c => c.Tags.Contains(HealthTags.Ready) });
                    endpoints.MapGet(MetricsPath, () => Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"));
                });
            }));

    private static IPAddress[] Addresses(string host) =>
        IPAddress.TryParse(host, out var ip) ? [ip]
        : host == "localhost" ? [IPAddress.Loopback]
        : Dns.GetHostAddresses(host);
}
