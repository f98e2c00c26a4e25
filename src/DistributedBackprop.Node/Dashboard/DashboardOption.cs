using System.Net;
using System.Net.Sockets;
using DistributedBackprop.Core;
using DistributedBackprop.Node.Cli;

namespace DistributedBackprop.Node.Dashboard;

/// <summary><c>--dashboard [PORT]</c> and <c>--dashboard-host H</c>, shared by train, simulate and node.</summary>
public static class DashboardOption
{
    /// <summary>Not TensorBoard's 6006, so both can run side by side.</summary>
    public const int DefaultPort = 8050;

    public static readonly HashSet<string> OptionalValue = ["dashboard"];
    public static readonly HashSet<string> Valued = ["dashboard-host"];

    public const string Help = """
          --dashboard [PORT]     serve a live dashboard of the run folder on http://127.0.0.1:PORT/ while the run lasts
                                 (default port 8050; 0: any free port); distbp report RUN_DIR draws it afterwards
          --dashboard-host H     address the dashboard binds (default 127.0.0.1; 0.0.0.0: every interface)

        """;

    /// <summary>
    /// Binds the dashboard's port when --dashboard was given (a port in use fails here, before anything is written) and
    /// prints its address; the command then calls <see cref="DashboardServer.Follow"/> with its run folder.
    /// </summary>
    public static DashboardServer? StartIfAsked(ParsedArguments args, TextWriter output, CancellationToken cancel)
    {
        if (!args.Has("dashboard"))
        {
            return args.Has("dashboard-host")
                ? throw new DistbpInputException("--dashboard-host: only means something with --dashboard [PORT].")
                : null;
        }
        var port = args.Int("dashboard", DefaultPort);
        if (port is < 0 or > 65535)
        {
            throw new DistbpInputException($"--dashboard: {port} is not a TCP port (0 picks a free one).");
        }
        var address = Address(args.String("dashboard-host") ?? "127.0.0.1");
        var server = DashboardServer.StartAsync(address, port, cancel).GetAwaiter().GetResult();
        output.WriteLine($"dashboard {server.Url}");
        return server;
    }

    private static IPAddress Address(string host)
    {
        if (IPAddress.TryParse(host, out var ip))
        {
            return ip;
        }
        if (host == "localhost")
        {
            return IPAddress.Loopback;
        }
        try
        {
            return Dns.GetHostAddresses(host).FirstOrDefault()
                   ?? throw new DistbpInputException($"--dashboard-host: '{host}' has no address.");
        }
        catch (SocketException e)
        {
            throw new DistbpInputException($"--dashboard-host: '{host}' is not a known host name ({e.Message}).");
        }
    }
}
