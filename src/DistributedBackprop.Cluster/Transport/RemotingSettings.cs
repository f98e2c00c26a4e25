using Akka.Configuration;
using Akka.Hosting;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>
/// The one place for Akka.Remote's frame and buffer sizes. docs/akka-notes.md (Remoting): the defaults (128000b frame, 256000b
/// buffers) drop any larger message with only an OversizedPayloadException log line, so the three are raised together;
/// log-frame-size-exceeding makes an unchunked big message visible; batching off measured 0.20–0.27 GB/s vs 0.11–0.22.
/// </summary>
public static class RemotingSettings
{
    /// <summary>maximum-frame-size, send-buffer-size and receive-buffer-size: all three together.</summary>
    public const int FrameBytes = 4 * 1024 * 1024;

    /// <summary>Messages above this are logged (once per type, +10%): anything this big should have been chunked.</summary>
    public const int LogFrameBytesAbove = 2 * TensorTransport.DefaultChunkBytes;

    /// <summary>The settings as HOCON.</summary>
    public static readonly string Hocon = $$"""
        akka.remote {
          log-frame-size-exceeding = {{LogFrameBytesAbove}}b
          dot-netty.tcp {
            maximum-frame-size = {{FrameBytes}}b
            send-buffer-size = {{FrameBytes}}b
            receive-buffer-size = {{FrameBytes}}b
            batching.enabled = false
          }
        }
        """;

    /// <summary>The settings as a Config (highest precedence when used as the primary config).</summary>
    public static Config Config => ConfigurationFactory.ParseString(Hocon);

    /// <summary>Applies the raised sizes over whatever remoting HOCON was added before (call after WithRemoting).</summary>
    public static AkkaConfigurationBuilder WithWireRemotingSettings(this AkkaConfigurationBuilder builder) =>
        builder.AddHocon(Config, HoconAddMode.Prepend);
}
