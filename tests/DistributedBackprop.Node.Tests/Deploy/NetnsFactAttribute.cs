using Xunit;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>A fact that needs root and iproute2 (private network namespaces); skipped, with the reason, otherwise.</summary>
public sealed class NetnsFactAttribute : FactAttribute
{
    public NetnsFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "network namespaces need Linux";
        }
        else if (!IsRoot())
        {
            Skip = "network namespaces need root (ip netns); run the tests as root to include this one";
        }
        else if (!new[] { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" }.Any(File.Exists))
        {
            Skip = "the ip command (iproute2) is missing; install iproute2 to include this test";
        }
    }

    /// <summary>The real user id is 0 (/proc/self/status), whatever USER says.</summary>
    private static bool IsRoot() =>
        File.Exists("/proc/self/status")
        && File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal))
            ?.Split('\t', StringSplitOptions.RemoveEmptyEntries) is [_, "0", ..];
}
