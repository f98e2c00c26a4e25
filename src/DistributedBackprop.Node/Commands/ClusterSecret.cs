using System.Security.Cryptography;
using DistributedBackprop.Core;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// The secret a cluster's nodes share: from <c>--cluster-secret-file</c> (a Kubernetes Secret mounted as a file, a
/// compose secret) or from DISTBP_CLUSTER_SECRET itself (simulate sets it for its nodes). Never taken from a flag's value,
/// so it does not show in a process listing.
/// </summary>
public static class ClusterSecret
{
    public const string EnvironmentVariable = "DISTBP_CLUSTER_SECRET";
    public const int MinimumBytes = 16;

    /// <summary>The secret's bytes, or null when none is configured; throws the input error for a short or unreadable one.</summary>
    public static byte[]? Read(string? file)
    {
        byte[] secret;
        string source;
        if (file is not null)
        {
            source = $"--cluster-secret-file: '{file}'";
            try
            {
                secret = File.ReadAllBytes(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new DistbpInputException($"{source} cannot be read: {e.Message}");
            }
        }
        else if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } value)
        {
            source = EnvironmentVariable;
            secret = System.Text.Encoding.UTF8.GetBytes(value);
        }
        else
        {
            return null;
        }
        var trimmed = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(secret).Trim());
        if (trimmed.Length < MinimumBytes)
        {
            throw new DistbpInputException(
                $"{source}: the cluster secret has {trimmed.Length} bytes; use at least {MinimumBytes} (e.g. head -c 32 /dev/urandom | base64).");
        }
        return trimmed;
    }

    /// <summary>A fresh secret for one run's nodes (simulate).</summary>
    public static string New() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
}
